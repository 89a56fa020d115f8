/* The model builder: layers appended one by one, shapes checked as they come. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "model.h"

struct dat_model_builder {
    dat_ctx *ctx;
    dat_node *nodes;
    int32_t n_nodes, cap_nodes;
    float *mean, *std; /* host, in_c each, or NULL */
};

dat_status (dat_layer_spec_init)(dat_layer_spec *spec, dat_layer_kind kind)
{
    DAT_CHECK_NOT_NULL(spec);
    if ((int)kind < DAT_LAYER_CONV2D || kind > DAT_LAYER_ADD)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "kind = %d is not a dat_layer_kind",
                         (int)kind);
    *spec = (dat_layer_spec){
        .size = sizeof(dat_layer_spec),
        .kind = kind,
        .name = NULL,
        .out_features = 0,
        .kernel = 3,
        .stride = 1,
        .padding = 0,
        .bias = 1,
        .bn_eps = 1e-5f,
        .bn_momentum = 0.1f,
    };
    return DAT_OK;
}

dat_status dat_layer_spec_init_sized(dat_layer_spec *spec, dat_layer_kind kind, size_t size)
{
    dat_layer_spec d;
    DAT_TRY((dat_layer_spec_init)(&d, kind));
    return dat_options_fill(__func__, spec, size, &d, sizeof d);
}

dat_status dat_model_builder_create(dat_model_builder **out, dat_ctx *ctx, int32_t channels,
                                    int32_t height, int32_t width)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    if (channels <= 0 || height <= 0 || width <= 0 || channels > 65536 || height > 65536 ||
        width > 65536)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "input shape %d x %d x %d must be positive (and at most 65536 each)",
                         (int)channels, (int)height, (int)width);
    dat_model_builder *b = calloc(1, sizeof *b);
    if (!b)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a builder");
    b->ctx = ctx;
    b->cap_nodes = 16;
    b->nodes = calloc((size_t)b->cap_nodes, sizeof *b->nodes);
    if (!b->nodes) {
        free(b);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a builder");
    }
    b->nodes[0] = (dat_node){.kind = DAT_NODE_INPUT, .in = {-1, -1}, .c = channels,
                             .h = height, .w = width, .w_off = -1, .b_off = -1, .buf_off = -1};
    b->n_nodes = 1;
    *out = b;
    return DAT_OK;
}

void dat_model_builder_destroy(dat_model_builder *builder)
{
    if (!builder)
        return;
    for (int32_t i = 0; i < builder->n_nodes; ++i)
        free(builder->nodes[i].name);
    free(builder->nodes);
    free(builder->mean);
    free(builder->std);
    free(builder);
}

dat_status dat_model_builder_set_normalization(dat_model_builder *builder, const float *mean,
                                               const float *std)
{
    DAT_CHECK_NOT_NULL(builder);
    DAT_CHECK_NOT_NULL(mean);
    DAT_CHECK_NOT_NULL(std);
    int32_t c = builder->nodes[0].c;
    for (int32_t i = 0; i < c; ++i) /* scale 1 / std and shift -mean / std in float */
        if (!(std[i] > 0) || !isfinite(mean[i]) || std[i] > 1e30f ||
            !isfinite(1.0f / std[i]) || !isfinite(-mean[i] / std[i]))
            return dat_error(DAT_ERR_INVALID_ARG, __func__,
                             "channel %d: need finite mean and std > 0 with 1 / std and "
                             "mean / std finite in float, got mean %g, std %g",
                             (int)i, (double)mean[i], (double)std[i]);
    float *m = malloc((size_t)c * sizeof *m), *s = malloc((size_t)c * sizeof *s);
    if (!m || !s) {
        free(m);
        free(s);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot copy the normalization");
    }
    memcpy(m, mean, (size_t)c * sizeof *m);
    memcpy(s, std, (size_t)c * sizeof *s);
    free(builder->mean);
    free(builder->std);
    builder->mean = m;
    builder->std = s;
    return DAT_OK;
}

static int needs_name(dat_layer_kind k)
{
    return k == DAT_LAYER_CONV2D || k == DAT_LAYER_LINEAR || k == DAT_LAYER_BATCHNORM;
}

static dat_status check_name(const dat_model_builder *b, const char *name)
{
    if (!name || !name[0])
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_builder_add",
                         "a layer with parameters needs a name (its state_dict prefix)");
    if (strlen(name) > 200)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_builder_add",
                         "name '%.40s...' is longer than 200 characters", name);
    for (int32_t i = 1; i < b->n_nodes; ++i)
        if (b->nodes[i].name && strcmp(b->nodes[i].name, name) == 0)
            return dat_error(DAT_ERR_INVALID_ARG, "dat_model_builder_add",
                             "name '%s' is already used by node %d", name, (int)i);
    return DAT_OK;
}

/* The features of a node's output flattened (C x H x W), which must fit an int32. */
static dat_status features(const char *f, const char *what, const dat_node *in, int32_t *out)
{
    int64_t n = (int64_t)in->c * in->h * in->w;
    if (n > INT32_MAX)
        return dat_error(DAT_ERR_INVALID_ARG, f, "%s: its input has %lld features (%d x %d x %d), "
                         "more than %d", what, (long long)n, (int)in->c, (int)in->h, (int)in->w,
                         INT32_MAX);
    *out = (int32_t)n;
    return DAT_OK;
}

/* Output shape of a layer from its input's; fills node->c, h, w. */
static dat_status infer_shape(const dat_node *in, const dat_node *in2, dat_node *node)
{
    const char *f = "dat_model_builder_add";
    const dat_layer_spec *s = &node->spec;
    node->c = in->c;
    node->h = in->h;
    node->w = in->w;
    switch (s->kind) {
    case DAT_LAYER_CONV2D: {
        if (s->out_features <= 0)
            return dat_error(DAT_ERR_INVALID_ARG, f, "conv '%s': out_features = %d must be > 0",
                             s->name, (int)s->out_features);
        dat_conv_desc d = {.n = 1, .c_in = in->c, .h_in = in->h, .w_in = in->w,
                           .c_out = s->out_features, .k_h = s->kernel, .k_w = s->kernel,
                           .stride = s->stride, .pad = s->padding};
        DAT_TRY(dat_conv_desc_init(f, &d));
        node->c = d.c_out;
        node->h = d.h_out;
        node->w = d.w_out;
        return DAT_OK;
    }
    case DAT_LAYER_LINEAR:
        if (s->out_features <= 0)
            return dat_error(DAT_ERR_INVALID_ARG, f, "linear '%s': out_features = %d must be > 0",
                             s->name, (int)s->out_features);
        DAT_TRY(features(f, "linear", in, &node->in_features));
        node->c = s->out_features;
        node->h = node->w = 1;
        return DAT_OK;
    case DAT_LAYER_BATCHNORM:
        if (!(s->bn_eps > 0) || !(s->bn_momentum >= 0 && s->bn_momentum <= 1))
            return dat_error(DAT_ERR_INVALID_ARG, f,
                             "batchnorm '%s': need eps > 0 and momentum in [0, 1], got %g, %g",
                             s->name, (double)s->bn_eps, (double)s->bn_momentum);
        return DAT_OK;
    case DAT_LAYER_RELU:
        return DAT_OK;
    case DAT_LAYER_MAXPOOL:
    case DAT_LAYER_AVGPOOL: {
        dat_pool_desc d = {.kind = s->kind == DAT_LAYER_MAXPOOL ? DAT_POOL_MAX : DAT_POOL_AVG,
                           .n = 1, .c = in->c, .h_in = in->h, .w_in = in->w, .k = s->kernel,
                           .stride = s->stride, .pad = s->padding};
        DAT_TRY(dat_pool_desc_init(f, &d));
        node->h = d.h_out;
        node->w = d.w_out;
        return DAT_OK;
    }
    case DAT_LAYER_GLOBAL_AVGPOOL:
        if (in->h != in->w)
            return dat_error(DAT_ERR_INVALID_ARG, f,
                             "global average pooling needs a square input, got %d x %d",
                             (int)in->h, (int)in->w);
        node->h = node->w = 1;
        return DAT_OK;
    case DAT_LAYER_FLATTEN:
        DAT_TRY(features(f, "flatten", in, &node->c));
        node->h = node->w = 1;
        return DAT_OK;
    case DAT_LAYER_ADD:
        if (in->c != in2->c || in->h != in2->h || in->w != in2->w)
            return dat_error(DAT_ERR_INVALID_ARG, f,
                             "add: input shapes differ: %d x %d x %d and %d x %d x %d",
                             (int)in->c, (int)in->h, (int)in->w, (int)in2->c, (int)in2->h,
                             (int)in2->w);
        return DAT_OK;
    default:
        return dat_error(DAT_ERR_INVALID_ARG, f, "kind = %d is not a dat_layer_kind",
                         (int)s->kind);
    }
}

static dat_status check_inputs(const dat_model_builder *b, const dat_layer_spec *spec,
                               int32_t input, int32_t input2)
{
    const char *f = "dat_model_builder_add";
    if (input < 0 || input >= b->n_nodes)
        return dat_error(DAT_ERR_INVALID_ARG, f, "input = %d is not a node (0 .. %d)",
                         (int)input, (int)b->n_nodes - 1);
    if (spec->kind == DAT_LAYER_ADD) {
        if (input2 < 0 || input2 >= b->n_nodes)
            return dat_error(DAT_ERR_INVALID_ARG, f, "add: input2 = %d is not a node (0 .. %d)",
                             (int)input2, (int)b->n_nodes - 1);
    } else if (input2 != -1) {
        return dat_error(DAT_ERR_INVALID_ARG, f, "input2 = %d, but only add takes two inputs",
                         (int)input2);
    }
    return DAT_OK;
}

static dat_status grow(dat_model_builder *b)
{
    if (b->n_nodes < b->cap_nodes)
        return DAT_OK;
    int32_t cap = b->cap_nodes * 2;
    dat_node *n = realloc(b->nodes, (size_t)cap * sizeof *n);
    if (!n)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_builder_add", "cannot grow the builder");
    b->nodes = n;
    b->cap_nodes = cap;
    return DAT_OK;
}

dat_status dat_model_builder_add(dat_model_builder *builder, const dat_layer_spec *spec,
                                 int32_t input, int32_t input2, int32_t *node)
{
    DAT_CHECK_NOT_NULL(builder);
    DAT_CHECK_NOT_NULL(spec);
    DAT_CHECK_OPTIONS_SIZE(spec, dat_layer_spec, sizeof(dat_layer_spec));
    DAT_TRY(check_inputs(builder, spec, input, input2));
    if (needs_name(spec->kind))
        DAT_TRY(check_name(builder, spec->name));
    dat_node nd = {.kind = spec->kind, .in = {input, input2}, .spec = *spec, .w_off = -1,
                   .b_off = -1, .buf_off = -1, .bn_index = -1};
    const dat_node *in2 = spec->kind == DAT_LAYER_ADD ? &builder->nodes[input2] : NULL;
    DAT_TRY(infer_shape(&builder->nodes[input], in2, &nd));
    nd.spec.name = NULL; /* the caller's pointer was only for messages; nd.name owns a copy */
    DAT_TRY(grow(builder));
    if (needs_name(spec->kind)) {
        nd.name = strdup(spec->name);
        if (!nd.name)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot copy the name");
    }
    builder->nodes[builder->n_nodes] = nd;
    if (node)
        *node = builder->n_nodes;
    builder->n_nodes++;
    return DAT_OK;
}

static dat_status copy_nodes(const dat_model_builder *b, dat_model *m)
{
    m->nodes = calloc((size_t)b->n_nodes, sizeof *m->nodes);
    if (!m->nodes)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_builder_finish", "cannot copy nodes");
    m->n_nodes = b->n_nodes;
    for (int32_t i = 0; i < b->n_nodes; ++i) {
        m->nodes[i] = b->nodes[i];
        m->nodes[i].name = NULL;
        if (b->nodes[i].name && !(m->nodes[i].name = strdup(b->nodes[i].name)))
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_builder_finish",
                             "cannot copy names");
    }
    return DAT_OK;
}

static dat_status upload_normalization(const dat_model_builder *b, dat_model *m)
{
    if (!b->mean)
        return DAT_OK;
    dat_ctx *ctx = m->ctx;
    int32_t c = m->in_c;
    float *scale = malloc((size_t)c * sizeof *scale), *shift = malloc((size_t)c * sizeof *shift);
    m->norm_mean = malloc((size_t)c * sizeof *m->norm_mean);
    m->norm_std = malloc((size_t)c * sizeof *m->norm_std);
    dat_status s = DAT_OK;
    if (!scale || !shift || !m->norm_mean || !m->norm_std)
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_builder_finish", "normalization");
    else {
        memcpy(m->norm_mean, b->mean, (size_t)c * sizeof *m->norm_mean);
        memcpy(m->norm_std, b->std, (size_t)c * sizeof *m->norm_std);
    }
    for (int32_t i = 0; s == DAT_OK && i < c; ++i) {
        scale[i] = 1.0f / b->std[i];
        shift[i] = -b->mean[i] / b->std[i];
    }
    if (s == DAT_OK)
        s = ctx->be->alloc(ctx, (size_t)c * sizeof(float), (void **)&m->norm_scale);
    if (s == DAT_OK)
        s = ctx->be->alloc(ctx, (size_t)c * sizeof(float), (void **)&m->norm_shift);
    if (s == DAT_OK)
        s = ctx->be->copy_from_host(ctx, m->norm_scale, scale, (size_t)c * sizeof(float));
    if (s == DAT_OK)
        s = ctx->be->copy_from_host(ctx, m->norm_shift, shift, (size_t)c * sizeof(float));
    free(scale);
    free(shift);
    return s;
}

dat_status dat_model_builder_finish(dat_model_builder *builder, int32_t output,
                                    uint64_t init_seed, dat_model **out)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(builder);
    if (output <= 0 || output >= builder->n_nodes)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "output = %d must be a layer node (1 .. %d)", (int)output,
                         (int)builder->n_nodes - 1);
    const dat_node *o = &builder->nodes[output];
    if (o->h != 1 || o->w != 1)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "the output node must give logits [N, classes], but gives %d x %d x %d "
                         "per sample (add a linear layer or flatten)",
                         (int)o->c, (int)o->h, (int)o->w);
    dat_model *m = calloc(1, sizeof *m);
    if (!m)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a model");
    m->ctx = builder->ctx;
    m->in_c = builder->nodes[0].c;
    m->in_h = builder->nodes[0].h;
    m->in_w = builder->nodes[0].w;
    m->classes = o->c;
    m->output = output;
    m->mode = DAT_MODE_TRAIN;
    dat_status s = copy_nodes(builder, m);
    if (s == DAT_OK) {
        dat_graph_plan(m);
        s = dat_model_layout(m);
    }
    if (s == DAT_OK)
        s = dat_model_init_params(m, init_seed);
    if (s == DAT_OK)
        s = upload_normalization(builder, m);
    if (s != DAT_OK) {
        dat_model_free(m);
        return s;
    }
    *out = m;
    return DAT_OK;
}
