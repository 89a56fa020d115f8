/* Running the layer graph: activation buffers, the forward pass and the
 * backward pass, op by op through the context's backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/error.h"
#include "model.h"

/* Whether node i has an output buffer of its own: not the input (the caller's),
 * not a node fused with its ReLU (its y is the ReLU's), not a batch norm that
 * an add computes (nothing reads its output). */
static int owns_y(const dat_model *m, int32_t i)
{
    return i > 0 && !m->nodes[i].fused_relu && !(i + 1 < m->n_nodes && m->nodes[i + 1].takes_bn);
}

static void free_runtime(dat_model *m)
{
    dat_ctx *ctx = m->ctx;
    for (int32_t i = 0; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        if (owns_y(m, i))
            ctx->be->free(ctx, n->y);
        if (n->grad_root == i)
            ctx->be->free(ctx, n->dy);
        ctx->be->free(ctx, n->save_mean);
        ctx->be->free(ctx, n->save_invstd);
        ctx->be->free(ctx, n->idx);
        ctx->be->free(ctx, n->x_f32);
        n->y = n->dy = n->save_mean = n->save_invstd = n->x_f32 = NULL;
        n->idx = NULL;
    }
    ctx->be->free(ctx, m->scratch);
    ctx->be->free(ctx, m->z_clean);
    ctx->be->free(ctx, m->dz);
    ctx->be->free(ctx, m->dz_clean);
    ctx->be->free(ctx, m->sample_loss);
    ctx->be->free(ctx, m->ones);
    ctx->be->free(ctx, m->x_norm);
    ctx->be->free(ctx, m->wshadow);
    ctx->be->free(ctx, m->bn_saved);
    m->scratch = m->z_clean = m->dz = m->dz_clean = m->sample_loss = m->ones = m->x_norm = NULL;
    m->bn_saved = NULL;
    m->last_batch = 0; /* the activations went with the buffers */
    m->wshadow = NULL;
    free(m->host_loss);
    free(m->host_weights);
    free(m->host_labels);
    free(m->grad_ready);
    m->host_loss = m->host_weights = NULL;
    m->host_labels = NULL;
    m->grad_ready = NULL;
    m->capacity = 0;
}

static dat_status alloc_floats(dat_ctx *ctx, int64_t count, float **p)
{
    return ctx->be->alloc(ctx, (size_t)count * sizeof(float), (void **)p);
}

/* Where each converted convolution weight sits in wshadow; returns its size.
 * Each starts on a 256-byte boundary (cudaMalloc's): at its flat parameter
 * offset a custom model's weight could sit 2 bytes from one, and cuDNN's
 * tensor-core kernels want 16-byte aligned operands. */
static size_t shadow_layout(dat_model *m)
{
    size_t end = 0;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        if (n->kind != DAT_LAYER_CONV2D || n->fmt == DAT_FMT_F32)
            continue;
        int64_t wlen, blen;
        dat_node_param_sizes(m, n, &wlen, &blen);
        n->shadow_off = (int64_t)((end + 255) & ~(size_t)255);
        end = (size_t)n->shadow_off + (size_t)wlen * dat_fmt_size(n->fmt);
    }
    return end;
}

/* own_y = 0: see owns_y; own_dy = 0: its gradient is in an add's buffer
 * (grad_share.c). */
static dat_status alloc_node(dat_model *m, dat_node *n, int32_t cap, int own_y, int own_dy)
{
    dat_ctx *ctx = m->ctx;
    int64_t len = (int64_t)cap * dat_node_numel(n);
    if (own_y)
        DAT_TRY(alloc_floats(ctx, len, &n->y));
    if (own_dy)
        DAT_TRY(alloc_floats(ctx, len, &n->dy));
    if (n->kind == DAT_LAYER_BATCHNORM) {
        DAT_TRY(alloc_floats(ctx, n->c, &n->save_mean));
        DAT_TRY(alloc_floats(ctx, n->c, &n->save_invstd));
    }
    if (n->kind == DAT_LAYER_MAXPOOL)
        DAT_TRY(ctx->be->alloc(ctx, (size_t)len * sizeof(int32_t), (void **)&n->idx));
    if (n->kind == DAT_LAYER_LINEAR && m->nodes[n->in[0]].fmt != DAT_FMT_F32)
        DAT_TRY(alloc_floats(ctx, 2 * (int64_t)cap * n->in_features, &n->x_f32));
    return DAT_OK;
}

static dat_status alloc_runtime(dat_model *m, int32_t cap)
{
    dat_ctx *ctx = m->ctx;
    int64_t largest = 0;
    /* Downwards: ReLUs before the convs that alias them, adds before the inputs that
     * share their gradient buffer. */
    for (int32_t i = m->n_nodes - 1; i >= 0; --i) {
        dat_node *nd = &m->nodes[i];
        DAT_TRY(alloc_node(m, nd, cap, owns_y(m, i), nd->grad_root == i));
        if (nd->fused_relu)
            nd->y = m->nodes[i + 1].y;
        if (nd->grad_root != i)
            nd->dy = m->nodes[nd->grad_root].dy;
        int64_t len = (int64_t)cap * dat_node_numel(&m->nodes[i]);
        largest = len > largest ? len : largest;
    }
    int64_t logits = (int64_t)cap * m->classes;
    /* Scratch also holds the two logit gradients of the TRADES term. */
    if (largest < 2 * logits)
        largest = 2 * logits;
    DAT_TRY(alloc_floats(ctx, largest, &m->scratch));
    DAT_TRY(alloc_floats(ctx, logits, &m->z_clean));
    DAT_TRY(alloc_floats(ctx, logits, &m->dz));
    DAT_TRY(alloc_floats(ctx, logits, &m->dz_clean));
    DAT_TRY(alloc_floats(ctx, cap, &m->sample_loss));
    DAT_TRY(alloc_floats(ctx, cap, &m->ones));
    const float one = 1.0f;
    DAT_TRY(ctx->be->fill(ctx, m->ones, (size_t)cap, &one, sizeof one));
    if (m->norm_scale || m->nodes[0].fmt != DAT_FMT_F32)
        DAT_TRY(alloc_floats(ctx, (int64_t)cap * dat_node_numel(&m->nodes[0]), &m->x_norm));
    size_t shadow = shadow_layout(m);
    if (shadow)
        DAT_TRY(ctx->be->alloc(ctx, shadow, &m->wshadow));
    if (m->n_bn && ctx->be->copy_if_flagged) /* the statistics, then the flag */
        DAT_TRY(alloc_floats(ctx, m->buffers->numel + 1, &m->bn_saved));
    m->host_loss = malloc((size_t)cap * sizeof *m->host_loss);
    m->host_weights = malloc((size_t)cap * sizeof *m->host_weights);
    m->host_labels = malloc((size_t)cap * sizeof *m->host_labels);
    m->grad_ready = malloc((size_t)m->n_nodes);
    if (!m->host_loss || !m->host_weights || !m->host_labels || !m->grad_ready)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_reserve", "host scratch");
    m->capacity = cap;
    return DAT_OK;
}

/* Unique in the process, so that a model created where a destroyed one lived
 * never matches what was keyed to the old one's buffers (a captured graph). */
static uint64_t next_runtime_gen(void)
{
    static uint64_t gen;
    return __atomic_add_fetch(&gen, 1, __ATOMIC_RELAXED);
}

dat_status dat_model_reserve(dat_model *m, int32_t n)
{
    if (n <= m->capacity)
        return DAT_OK;
    if (m->capacity)
        dat_capture_buffers_moved(m->ctx);
    free_runtime(m);
    m->runtime_gen = next_runtime_gen();
    dat_status s = alloc_runtime(m, n);
    if (s != DAT_OK)
        free_runtime(m);
    return s;
}

static const float *param(const dat_model *m, int64_t off)
{
    return off < 0 ? NULL : (const float *)m->params->data + off;
}

static float *grad(const dat_model *m, int64_t off, float beta)
{
    return off < 0 || beta < 0 ? NULL : (float *)m->grads->data + off;
}

static dat_conv_desc conv_desc(const dat_model *m, const dat_node *n, int32_t batch)
{
    const dat_node *in = &m->nodes[n->in[0]];
    dat_conv_desc d = {.n = batch, .c_in = in->c, .h_in = in->h, .w_in = in->w, .c_out = n->c,
                       .k_h = n->spec.kernel, .k_w = n->spec.kernel, .stride = n->spec.stride,
                       .pad = n->spec.padding, .h_out = n->h, .w_out = n->w, .fmt = n->fmt};
    return d;
}

/* The weight a convolution reads: in its format's copy unless float32 NCHW. */
static const void *conv_weight(const dat_model *m, const dat_node *n)
{
    if (n->fmt == DAT_FMT_F32)
        return param(m, n->w_off);
    return (const char *)m->wshadow + n->shadow_off;
}

/* Converts the convolution weights into their layers' format, once per forward
 * pass: the caller may have changed the parameters since the last one, unless
 * they are pinned. */
static dat_status refresh_weights(dat_model *m)
{
    if (m->weights_pinned && m->wshadow_fresh)
        return DAT_OK;
    for (int32_t i = 1; m->wshadow && i < m->n_nodes; ++i) {
        const dat_node *n = &m->nodes[i];
        if (n->kind != DAT_LAYER_CONV2D || n->fmt == DAT_FMT_F32)
            continue;
        DAT_TRY(DAT_OP(m->ctx, act_convert, n->c, m->nodes[n->in[0]].c,
                       n->spec.kernel * n->spec.kernel, DAT_FMT_F32, param(m, n->w_off), NULL,
                       NULL, n->fmt, (void *)conv_weight(m, n)));
    }
    m->wshadow_fresh = m->weights_pinned;
    return DAT_OK;
}

void dat_graph_pin_weights(dat_model *m, int pinned)
{
    m->weights_pinned = pinned;
    m->wshadow_fresh = 0;
}

static dat_pool_desc pool_desc(const dat_model *m, const dat_node *n, int32_t batch)
{
    const dat_node *in = &m->nodes[n->in[0]];
    int global = n->kind == DAT_LAYER_GLOBAL_AVGPOOL;
    dat_pool_desc d = {.kind = n->kind == DAT_LAYER_MAXPOOL ? DAT_POOL_MAX : DAT_POOL_AVG,
                       .n = batch, .c = in->c, .h_in = in->h, .w_in = in->w,
                       .k = global ? in->h : n->spec.kernel, .stride = global ? 1 : n->spec.stride,
                       .pad = global ? 0 : n->spec.padding, .h_out = n->h, .w_out = n->w,
                       .fmt = n->fmt};
    return d;
}

static dat_bn_desc bn_desc(const dat_node *n, int32_t batch)
{
    dat_bn_desc d = {.n = batch, .c = n->c, .hw = n->h * n->w, .eps = n->spec.bn_eps,
                     .momentum = n->spec.bn_momentum, .fmt = n->fmt};
    return d;
}

/* Batch norm n of x, written to n->y; with `add` (the add that takes it,
 * forward_add) plus that add's other input, the add's fused ReLU after, written
 * to add->y. In eval mode n may take the add before it too. */
static dat_status forward_bn(dat_model *m, dat_node *n, const float *x, int32_t batch,
                             int update_running, const dat_node *add)
{
    dat_ctx *ctx = m->ctx;
    dat_bn_desc d = bn_desc(n, batch);
    d.relu_out = n->fused_relu; /* then n->y is the ReLU's output */
    float *y = n->y;
    if (add) {
        const dat_node *a = &m->nodes[add->in[0]], *b = &m->nodes[add->in[1]];
        d.residual = a == n ? b->y : a->y;
        d.relu_out = add->fused_relu;
        y = add->y;
    }
    float *rm = (float *)m->buffers->data + n->buf_off, *rv = rm + n->c;
    if (m->mode == DAT_MODE_EVAL) {
        if (n->takes_add) {
            const dat_node *sum = n - 1;
            x = m->nodes[sum->in[0]].y;
            d.x2 = m->nodes[sum->in[1]].y;
            d.x_sum = sum->y;
        }
        return DAT_OP(ctx, bn_fwd_eval, &d, x, param(m, n->w_off), param(m, n->b_off), rm, rv,
                      y);
    }
    if (update_running) {
        m->num_batches_tracked[n->bn_index]++;
        DAT_TRY(dat_capture_counter(ctx, m->num_batches_tracked + n->bn_index, 1, NULL));
    }
    return DAT_OP(ctx, bn_fwd_train, &d, x, param(m, n->w_off), param(m, n->b_off),
                  update_running ? rm : NULL, update_running ? rv : NULL, n->save_mean,
                  n->save_invstd, y);
}

void dat_graph_count_forwards(dat_model *m, int32_t count)
{
    if (m->mode != DAT_MODE_TRAIN)
        return;
    for (int32_t k = 0; k < m->n_bn; ++k)
        m->num_batches_tracked[k] += count;
}

/* Every node takes its input's format but flatten and linear layers, which
 * are float32 NCHW (the logits' kind; they convert what they read); node 0,
 * the normalized input, takes the context's. A model the rule does not fit
 * (an add reading two formats, an output not float32) or that has no layer in
 * the format (an MLP) runs float32 NCHW throughout. */
static void plan_formats(dat_model *m, dat_act_fmt want)
{
    int fits = 1, in_fmt = 0;
    m->nodes[0].fmt = want;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        dat_act_fmt in = m->nodes[n->in[0]].fmt;
        n->fmt = n->kind == DAT_LAYER_LINEAR || n->kind == DAT_LAYER_FLATTEN ? DAT_FMT_F32 : in;
        if (n->kind == DAT_LAYER_ADD && m->nodes[n->in[1]].fmt != in)
            fits = 0;
        in_fmt += n->fmt != DAT_FMT_F32;
    }
    if (fits && in_fmt && m->nodes[m->output].fmt == DAT_FMT_F32)
        return;
    for (int32_t i = 0; i < m->n_nodes; ++i)
        m->nodes[i].fmt = DAT_FMT_F32;
}

/* How many inputs of later nodes read node i. */
static int consumers(const dat_model *m, int32_t i)
{
    int count = 0;
    for (int32_t j = i + 1; j < m->n_nodes; ++j)
        count += (m->nodes[j].in[0] == i) + (m->nodes[j].in[1] == i);
    return count;
}

/* Residual adds done inside the batch norm next to them: the BN before an add
 * that alone reads it (takes_bn: the add computes the BN, whose output nothing
 * else needs) and, in eval mode (an attack's passes), the add before a BN that
 * reads it (takes_add: the BN normalizes the sum, which it writes too; in train
 * mode the statistics of the sum would have to be summed from the add's two
 * inputs). */
static void plan_bn_adds(dat_model *m)
{
    for (int32_t i = 2; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        n->takes_add = n->kind == DAT_LAYER_BATCHNORM && n->in[0] == i - 1 &&
                       m->nodes[i - 1].kind == DAT_LAYER_ADD;
    }
    for (int32_t i = 2; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i], *bn = n - 1;
        int skipped = i + 1 < m->n_nodes && m->nodes[i + 1].takes_add;
        n->takes_bn = n->kind == DAT_LAYER_ADD && !skipped && n->in[0] != n->in[1] &&
                      (n->in[0] == i - 1 || n->in[1] == i - 1) &&
                      bn->kind == DAT_LAYER_BATCHNORM && !bn->takes_add &&
                      consumers(m, i - 1) == 1 && m->output != i - 1;
    }
}

void dat_graph_plan(dat_model *m)
{
    const dat_backend *be = m->ctx->be;
    plan_formats(m, m->ctx->act_fmt);
    for (int32_t i = 1; i + 1 < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i], *next = &m->nodes[i + 1];
        int fusable = (n->kind == DAT_LAYER_CONV2D && be->fuses_conv_relu) ||
                      (n->kind == DAT_LAYER_BATCHNORM && be->fuses_bn_relu) ||
                      n->kind == DAT_LAYER_ADD;
        if (!fusable || next->kind != DAT_LAYER_RELU || next->in[0] != i)
            continue;
        n->fused_relu = consumers(m, i) == 1 && m->output != i;
    }
    plan_bn_adds(m);
    dat_graph_plan_grad_sharing(m);
}

/* An add, with the ReLU after it where fused, and the batch norm before it where
 * it takes it (that input of the add is then never written). */
static dat_status forward_add(dat_model *m, dat_node *n, int32_t batch, int update_running)
{
    dat_ctx *ctx = m->ctx;
    if (n->takes_bn) {
        dat_node *bn = n - 1;
        return forward_bn(m, bn, m->nodes[bn->in[0]].y, batch, update_running, n);
    }
    const float *a = m->nodes[n->in[0]].y, *b = m->nodes[n->in[1]].y;
    size_t len = (size_t)batch * (size_t)dat_node_numel(n);
    if (n->fused_relu)
        return DAT_OP(ctx, add_relu, n->fmt, len, a, b, n->y);
    return DAT_OP(ctx, add, n->fmt, len, a, b, n->y);
}

static dat_status forward_node(dat_model *m, dat_node *n, int32_t batch, int update_running)
{
    dat_ctx *ctx = m->ctx;
    const float *x = m->nodes[n->in[0]].y;
    size_t len = (size_t)batch * (size_t)dat_node_numel(n);
    switch (n->kind) {
    case DAT_LAYER_CONV2D: {
        dat_conv_desc d = conv_desc(m, n, batch);
        d.relu_out = n->fused_relu; /* then n->y is the ReLU's output */
        return DAT_OP(ctx, conv2d_fwd, &d, x, conv_weight(m, n), param(m, n->b_off), n->y);
    }
    case DAT_LAYER_LINEAR:
        if (n->x_f32) {
            const dat_node *in = &m->nodes[n->in[0]];
            DAT_TRY(DAT_OP(ctx, act_convert, batch, in->c, in->h * in->w, in->fmt, x, NULL, NULL,
                           DAT_FMT_F32, n->x_f32));
            x = n->x_f32;
        }
        return DAT_OP(ctx, linear_fwd, batch, n->in_features, n->c, x, param(m, n->w_off),
                      param(m, n->b_off), n->y);
    case DAT_LAYER_BATCHNORM:
        return forward_bn(m, n, x, batch, update_running, NULL);
    case DAT_LAYER_RELU:
        return DAT_OP(ctx, relu_fwd, n->fmt, len, x, n->y);
    case DAT_LAYER_MAXPOOL:
    case DAT_LAYER_AVGPOOL:
    case DAT_LAYER_GLOBAL_AVGPOOL: {
        dat_pool_desc d = pool_desc(m, n, batch);
        return DAT_OP(ctx, pool_fwd, &d, x, n->y, n->idx);
    }
    case DAT_LAYER_FLATTEN: {
        const dat_node *in = &m->nodes[n->in[0]];
        if (in->fmt == DAT_FMT_F32)
            return ctx->be->copy(ctx, n->y, x, len * sizeof(float));
        return DAT_OP(ctx, act_convert, batch, in->c, in->h * in->w, in->fmt, x, NULL, NULL,
                      DAT_FMT_F32, n->y);
    }
    case DAT_LAYER_ADD:
        return forward_add(m, n, batch, update_running);
    default:
        return dat_error(DAT_ERR_INTERNAL, __func__, "node kind %d", (int)n->kind);
    }
}

/* After a recorded forward pass that updated the BN running statistics: if
 * any came out NaN or Inf (a NaN input, which the op-by-op check refuses
 * before the pass), they are put back as they were, so that one bad batch
 * in a replay does not spoil the model's evaluation for good. */
static dat_status keep_finite_stats(dat_model *m)
{
    dat_ctx *ctx = m->ctx;
    size_t n = (size_t)m->buffers->numel;
    uint32_t *flag = (uint32_t *)(m->bn_saved + n);
    const uint32_t zero = 0;
    DAT_TRY(ctx->be->fill(ctx, flag, 1, &zero, sizeof zero));
    DAT_TRY(DAT_OP(ctx, flag_range, n, m->buffers->data, -INFINITY, INFINITY, flag, 1u));
    return DAT_OP(ctx, copy_if_flagged, m->buffers->data, m->bn_saved, n, flag);
}

dat_status dat_graph_forward(dat_model *m, const float *x, int32_t n, int update_running)
{
    dat_ctx *ctx = m->ctx;
    int guard = update_running && m->mode == DAT_MODE_TRAIN && m->bn_saved && dat_capturing(ctx);
    if (guard)
        DAT_TRY(ctx->be->copy(ctx, m->bn_saved, m->buffers->data, m->buffers->nbytes));
    dat_node *in = &m->nodes[0];
    if (m->x_norm) {
        DAT_TRY(DAT_OP(ctx, act_convert, n, m->in_c, m->in_h * m->in_w, DAT_FMT_F32, x,
                       m->norm_scale, m->norm_shift, in->fmt, m->x_norm));
        in->y = m->x_norm;
    } else {
        in->y = (float *)x;
    }
    DAT_TRY(refresh_weights(m));
    m->last_batch = n;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        const dat_node *next = i + 1 < m->n_nodes ? &m->nodes[i + 1] : NULL;
        if (next && (next->takes_bn || (next->takes_add && m->mode == DAT_MODE_EVAL)))
            continue; /* the node after it computes it (forward_add, forward_bn) */
        DAT_TRY(forward_node(m, &m->nodes[i], n, update_running));
        if (m->nodes[i].fused_relu)
            ++i; /* the node computed its ReLU */
    }
    return guard ? keep_finite_stats(m) : DAT_OK;
}

/* Gradients flowing into node j: the first contribution is written into its dy
 * directly; later ones (a node with several consumers) are added to it, by the
 * op itself where it can (convolutions' and batch norms' dx_add), else through
 * scratch and the add op. */
static float *grad_target(dat_model *m, int32_t j)
{
    return m->grad_ready[j] ? m->scratch : m->nodes[j].dy;
}

static dat_status grad_commit(dat_model *m, int32_t j, int32_t batch)
{
    dat_node *n = &m->nodes[j];
    if (m->grad_ready[j])
        DAT_TRY(DAT_OP(m->ctx, add, n->fmt, (size_t)batch * (size_t)dat_node_numel(n), n->dy,
                       m->scratch, n->dy));
    m->grad_ready[j] = 1;
    return DAT_OK;
}

typedef struct backward_pass {
    int32_t batch;
    float beta;   /* < 0: no parameter gradients */
    int want_dx;  /* whether the model input's gradient is needed */
} backward_pass;

static int needs_grad(const backward_pass *bp, int32_t j)
{
    return j != 0 || bp->want_dx;
}

static dat_status backward_bn(dat_model *m, dat_node *n, const backward_pass *bp, float *dx,
                              int dx_add)
{
    dat_ctx *ctx = m->ctx;
    dat_bn_desc d = bn_desc(n, bp->batch);
    d.dx_add = dx_add;
    /* Fused: the gradient arrives at the ReLU; its output is the mask. */
    const dat_node *relu = n->fused_relu ? n + 1 : NULL;
    const float *dy = relu ? relu->dy : n->dy;
    d.relu_mask = relu ? relu->y : NULL;
    const float *x = m->nodes[n->in[0]].y;
    float *dg = grad(m, n->w_off, bp->beta), *db = grad(m, n->b_off, bp->beta);
    float beta = bp->beta < 0 ? 0.0f : bp->beta;
    if (m->mode == DAT_MODE_EVAL) {
        const float *rm = (const float *)m->buffers->data + n->buf_off;
        return DAT_OP(ctx, bn_bwd_eval, &d, x, dy, param(m, n->w_off), rm, rm + n->c, dx, dg, db,
                      beta);
    }
    return DAT_OP(ctx, bn_bwd_train, &d, x, dy, param(m, n->w_off), n->save_mean,
                  n->save_invstd, dx, dg, db, beta);
}

/* A linear layer reading another format takes its float32 copy of the input
 * and converts the input's gradient back. */
static dat_status backward_linear(dat_model *m, dat_node *n, const backward_pass *bp, void *dx)
{
    dat_ctx *ctx = m->ctx;
    const dat_node *in = &m->nodes[n->in[0]];
    const float *x = n->x_f32 ? n->x_f32 : in->y;
    float *dx32 = n->x_f32 && dx ? n->x_f32 + (size_t)m->capacity * n->in_features : dx;
    float beta = bp->beta < 0 ? 0.0f : bp->beta;
    DAT_TRY(DAT_OP(ctx, linear_bwd, bp->batch, n->in_features, n->c, x, param(m, n->w_off),
                   n->dy, dx32, grad(m, n->w_off, bp->beta), grad(m, n->b_off, bp->beta),
                   beta));
    if (dx32 == dx)
        return DAT_OK;
    return DAT_OP(ctx, act_convert, bp->batch, in->c, in->h * in->w, DAT_FMT_F32, dx32, NULL, NULL,
                  in->fmt, dx);
}

static dat_status backward_node(dat_model *m, dat_node *n, const backward_pass *bp)
{
    dat_ctx *ctx = m->ctx;
    int32_t j = n->in[0];
    const float *x = m->nodes[j].y;
    int need = needs_grad(bp, j);
    float *dx = need ? grad_target(m, j) : NULL;
    size_t len = (size_t)bp->batch * (size_t)dat_node_numel(n);
    float beta = bp->beta < 0 ? 0.0f : bp->beta;
    switch (n->kind) {
    case DAT_LAYER_CONV2D: {
        dat_conv_desc d = conv_desc(m, n, bp->batch);
        /* Fused: the gradient arrives at the ReLU; its output is the mask. */
        const dat_node *relu = n->fused_relu ? n + 1 : NULL;
        const float *dy = relu ? relu->dy : n->dy;
        d.relu_mask = relu ? relu->y : NULL;
        if (bp->beta >= 0)
            DAT_TRY(DAT_OP(ctx, conv2d_bwd_filter, &d, x, dy, grad(m, n->w_off, bp->beta),
                           grad(m, n->b_off, bp->beta), beta));
        if (!need)
            return DAT_OK;
        d.dx_add = m->grad_ready[j];
        DAT_TRY(DAT_OP(ctx, conv2d_bwd_data, &d, dy, conv_weight(m, n), m->nodes[j].dy));
        m->grad_ready[j] = 1;
        return DAT_OK;
    }
    case DAT_LAYER_LINEAR:
        DAT_TRY(backward_linear(m, n, bp, dx));
        break;
    case DAT_LAYER_BATCHNORM:
        /* The batch-norm backward always produces dx; without a consumer it goes to scratch. */
        DAT_TRY(backward_bn(m, n, bp, need ? m->nodes[j].dy : m->scratch,
                            need && m->grad_ready[j]));
        if (need)
            m->grad_ready[j] = 1;
        return DAT_OK;
    case DAT_LAYER_RELU:
        if (need)
            DAT_TRY(DAT_OP(ctx, relu_bwd, n->fmt, len, n->y, n->dy, dx));
        break;
    case DAT_LAYER_MAXPOOL:
    case DAT_LAYER_AVGPOOL:
    case DAT_LAYER_GLOBAL_AVGPOOL: {
        dat_pool_desc d = pool_desc(m, n, bp->batch);
        if (need)
            DAT_TRY(DAT_OP(ctx, pool_bwd, &d, n->dy, n->idx, dx));
        break;
    }
    case DAT_LAYER_FLATTEN: {
        const dat_node *in = &m->nodes[j];
        if (need && in->fmt == DAT_FMT_F32)
            DAT_TRY(ctx->be->copy(ctx, dx, n->dy, len * sizeof(float)));
        else if (need)
            DAT_TRY(DAT_OP(ctx, act_convert, bp->batch, in->c, in->h * in->w, DAT_FMT_F32, n->dy,
                           NULL, NULL, in->fmt, dx));
        break;
    }
    case DAT_LAYER_ADD:
        if (n->fused_relu) { /* the gradient arrives at the ReLU; its output is the mask */
            const dat_node *relu = n + 1;
            DAT_TRY(DAT_OP(ctx, relu_bwd, n->fmt, len, relu->y, relu->dy, n->dy));
        }
        for (int k = 0; k < 2; ++k) {
            int32_t jk = n->in[k];
            if (!needs_grad(bp, jk))
                continue;
            if (m->nodes[jk].grad_root == n->grad_root) { /* it is there already */
                m->grad_ready[jk] = 1;
                continue;
            }
            DAT_TRY(ctx->be->copy(ctx, grad_target(m, jk), n->dy, dat_node_bytes(n, bp->batch)));
            DAT_TRY(grad_commit(m, jk, bp->batch));
        }
        return DAT_OK;
    default:
        return dat_error(DAT_ERR_INTERNAL, __func__, "node kind %d", (int)n->kind);
    }
    return need ? grad_commit(m, j, bp->batch) : DAT_OK;
}

/* The first parameter offset of node i, or -1 for a node without any. */
static int64_t first_param(const dat_node *n)
{
    return n->w_off >= 0 ? n->w_off : n->b_off;
}

/* Zeroes the gradient of node i's parameters (from its first to the next
 * node's first: node order, init.c): an overwriting pass that does not reach
 * the node still writes every parameter's gradient, as dat_model.h says. */
static dat_status zero_param_grads(dat_model *m, int32_t i)
{
    int64_t lo = first_param(&m->nodes[i]), hi = m->grads->numel;
    if (lo < 0)
        return DAT_OK;
    for (int32_t j = i + 1; j < m->n_nodes; ++j)
        if (first_param(&m->nodes[j]) >= 0) {
            hi = first_param(&m->nodes[j]);
            break;
        }
    const float zero = 0.0f;
    return m->ctx->be->fill(m->ctx, (float *)m->grads->data + lo, (size_t)(hi - lo), &zero,
                            sizeof zero);
}

/* Node i's part of the backward pass. */
static dat_status backward_at(dat_model *m, int32_t i, const backward_pass *bp)
{
    /* A node that does not lead to the output gets no gradient: zero where the
     * pass overwrites the parameters' gradients. */
    if (!m->grad_ready[i])
        return bp->beta == 0.0f ? zero_param_grads(m, i) : DAT_OK;
    if (m->nodes[i - 1].fused_relu) { /* the conv's or BN's backward applies the mask */
        m->grad_ready[i - 1] = 1;
        return DAT_OK;
    }
    return backward_node(m, &m->nodes[i], bp);
}

/* Nodes i and above are done: their parameters' gradients, which lie from node
 * i's first parameter to the end (node order, init.c), are final. The first
 * layer's (offset 0) ends the pass: that is the synchronizer's end to queue. */
static void report_final(dat_model *m, int32_t i)
{
    int64_t lo = first_param(&m->nodes[i]);
    if (lo > 0)
        m->grad_hook(m->grad_hook_user, (size_t)lo);
}

dat_status dat_graph_backward(dat_model *m, const float *dz, int32_t n, float param_beta,
                              float *dx)
{
    dat_ctx *ctx = m->ctx;
    backward_pass bp = {.batch = n, .beta = param_beta, .want_dx = dx != NULL};
    memset(m->grad_ready, 0, (size_t)m->n_nodes);
    dat_node *out = &m->nodes[m->output];
    DAT_TRY(ctx->be->copy(ctx, out->dy, dz, (size_t)n * (size_t)m->classes * sizeof(float)));
    m->grad_ready[m->output] = 1;
    int hook = m->grad_hook && m->grad_hook_armed && m->grad_hook_pass && param_beta >= 0;
    for (int32_t i = m->n_nodes - 1; i >= 1; --i) {
        DAT_TRY(backward_at(m, i, &bp));
        if (hook)
            report_final(m, i);
    }
    if (!dx)
        return DAT_OK;
    size_t in_len = (size_t)n * (size_t)dat_node_numel(&m->nodes[0]);
    if (!m->grad_ready[0]) {
        float zero = 0.0f;
        return ctx->be->fill(ctx, dx, in_len, &zero, sizeof zero);
    }
    if (m->x_norm) /* d/dx of (x - mean) / std, and back to float32 NCHW */
        return DAT_OP(ctx, act_convert, n, m->in_c, m->in_h * m->in_w, m->nodes[0].fmt,
                      m->nodes[0].dy, m->norm_scale, NULL, DAT_FMT_F32, dx);
    return ctx->be->copy(ctx, dx, m->nodes[0].dy, in_len * sizeof(float));
}

dat_status dat_graph_backward_last(dat_model *m, const float *dz, int32_t n, float param_beta)
{
    m->grad_hook_pass = 1;
    dat_status s = dat_graph_backward(m, dz, n, param_beta, NULL);
    m->grad_hook_pass = 0;
    return s;
}

void dat_model_free(dat_model *m)
{
    if (!m)
        return;
    free_runtime(m);
    dat_ctx *ctx = m->ctx;
    ctx->be->free(ctx, m->norm_scale);
    ctx->be->free(ctx, m->norm_shift);
    free(m->norm_mean);
    free(m->norm_std);
    for (int32_t i = 0; m->nodes && i < m->n_nodes; ++i)
        free(m->nodes[i].name);
    free(m->nodes);
    for (int32_t i = 0; m->segs && i < m->n_segs; ++i)
        free(m->segs[i].name);
    free(m->segs);
    free(m->num_batches_tracked);
    dat_tensor_destroy(m->params);
    dat_tensor_destroy(m->grads);
    dat_tensor_destroy(m->buffers);
    free(m);
}
