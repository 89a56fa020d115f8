/* dat_model_save / dat_model_load: the model's state_dict as safetensors, with
 * PyTorch's names and shapes, so weights move between PyTorch and libdat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../io/safetensors.h"
#include "model.h"

/* Host copies of the flat parameters and BN buffers (the tensors may be on a GPU). */
typedef struct host_state {
    float *params, *buffers;
} host_state;

static dat_status fetch(dat_model *m, host_state *h)
{
    dat_ctx *ctx = m->ctx;
    h->params = malloc(m->params->nbytes);
    h->buffers = malloc(m->buffers ? m->buffers->nbytes : 1);
    if (!h->params || !h->buffers)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_save", "host copy of the parameters");
    DAT_TRY(ctx->be->copy_to_host(ctx, h->params, m->params->data, m->params->nbytes));
    if (m->buffers)
        DAT_TRY(ctx->be->copy_to_host(ctx, h->buffers, m->buffers->data, m->buffers->nbytes));
    return DAT_OK;
}

static void release(host_state *h)
{
    free(h->params);
    free(h->buffers);
}

/* Names of a BN layer's buffers: "<layer>.running_mean" etc. */
static void buffer_name(char *out, size_t size, const dat_node *n, const char *what)
{
    snprintf(out, size, "%s.%s", n->name, what);
}

/* Adds every tensor of the model to a writer (data pointing into h). */
static void add_state(const dat_model *m, const host_state *h, dat_st_writer *w, char (*names)[256])
{
    for (int32_t s = 0; s < m->n_segs; ++s) {
        const dat_seg_entry *e = &m->segs[s];
        dat_st_writer_add(w, e->name, DAT_ST_F32, e->ndim, e->shape, h->params + e->offset);
    }
    int k = 0;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        const dat_node *n = &m->nodes[i];
        if (n->kind != DAT_LAYER_BATCHNORM)
            continue;
        int64_t c = n->c;
        buffer_name(names[k], sizeof names[k], n, "running_mean");
        dat_st_writer_add(w, names[k++], DAT_ST_F32, 1, &c, h->buffers + n->buf_off);
        buffer_name(names[k], sizeof names[k], n, "running_var");
        dat_st_writer_add(w, names[k++], DAT_ST_F32, 1, &c, h->buffers + n->buf_off + c);
        buffer_name(names[k], sizeof names[k], n, "num_batches_tracked");
        dat_st_writer_add(w, names[k++], DAT_ST_I64, 0, NULL, &m->num_batches_tracked[n->bn_index]);
    }
}

dat_status dat_model_write(dat_model *model, const char *path, dat_model_extra_fn extra,
                           void *user)
{
    host_state h = {0};
    char (*names)[256] = calloc((size_t)(3 * model->n_bn + 1), sizeof *names);
    dat_status s = names ? fetch(model, &h)
                         : dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "names");
    if (s == DAT_OK) {
        dat_st_writer w;
        dat_st_writer_init(&w);
        add_state(model, &h, &w, names);
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d", (int)model->in_c, (int)model->in_h,
                 (int)model->in_w);
        dat_st_writer_meta(&w, "format", "pt");
        dat_st_writer_meta(&w, "libdat_version", DAT_VERSION_STRING);
        dat_st_writer_meta(&w, "input_shape", shape);
        if (extra)
            extra(&w, user);
        s = dat_st_write(&w, path);
        dat_st_writer_free(&w);
    }
    release(&h);
    free(names);
    return s;
}

dat_status dat_model_save(dat_model *model, const char *path)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(path);
    dat_status s = dat_model_write(model, path, NULL, NULL);
    return s == DAT_OK ? DAT_OK : dat_error_context(s, __func__);
}

dat_status dat_model_load_options_init(dat_model_load_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_model_load_options){.size = sizeof(dat_model_load_options)};
    return DAT_OK;
}

/* The tensor `name` of the file must be `dtype` with exactly this shape. */
static dat_status expect_tensor(const char *path, const dat_st_file *f, const char *name,
                                dat_st_dtype dtype, int ndim, const int64_t *shape,
                                const dat_st_entry **out)
{
    const dat_st_entry *e = dat_st_find(f, name);
    if (!e)
        return dat_error(DAT_ERR_FORMAT, "dat_model_load",
                         "%s: tensor '%s' is missing (a checkpoint of another model?)", path, name);
    int same = e->dtype == dtype && e->ndim == ndim;
    for (int d = 0; same && d < ndim; ++d)
        same = e->shape[d] == shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < ndim; ++d)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                     (long long)shape[d]);
        for (int d = 0; d < e->ndim; ++d)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                     (long long)e->shape[d]);
        return dat_error(DAT_ERR_FORMAT, "dat_model_load",
                         "%s: tensor '%s' is %s [%s], the model needs %s [%s]", path, name,
                         dat_st_dtype_name(e->dtype), got, dat_st_dtype_name(dtype), want);
    }
    *out = e;
    return DAT_OK;
}

/* Checks every tensor and copies it into h; the model is untouched so far. */
static dat_status gather(const dat_model *m, const char *path, const dat_st_file *f,
                         host_state *h, int64_t *tracked)
{
    const dat_st_entry *e;
    for (int32_t s = 0; s < m->n_segs; ++s) {
        const dat_seg_entry *g = &m->segs[s];
        DAT_TRY(expect_tensor(path, f, g->name, DAT_ST_F32, g->ndim, g->shape, &e));
        memcpy(h->params + g->offset, e->data, (size_t)g->length * sizeof(float));
    }
    char name[256];
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        const dat_node *n = &m->nodes[i];
        if (n->kind != DAT_LAYER_BATCHNORM)
            continue;
        int64_t c = n->c;
        buffer_name(name, sizeof name, n, "running_mean");
        DAT_TRY(expect_tensor(path, f, name, DAT_ST_F32, 1, &c, &e));
        memcpy(h->buffers + n->buf_off, e->data, (size_t)c * sizeof(float));
        buffer_name(name, sizeof name, n, "running_var");
        DAT_TRY(expect_tensor(path, f, name, DAT_ST_F32, 1, &c, &e));
        memcpy(h->buffers + n->buf_off + c, e->data, (size_t)c * sizeof(float));
        buffer_name(name, sizeof name, n, "num_batches_tracked");
        DAT_TRY(expect_tensor(path, f, name, DAT_ST_I64, 0, NULL, &e));
        memcpy(&tracked[n->bn_index], e->data, sizeof(int64_t));
    }
    return DAT_OK;
}

static int is_trainer_state(const char *name)
{
    return strncmp(name, "optim.", 6) == 0 || strncmp(name, "train.", 6) == 0;
}

static int is_model_tensor(const dat_model *m, const char *name)
{
    for (int32_t s = 0; s < m->n_segs; ++s)
        if (strcmp(m->segs[s].name, name) == 0)
            return 1;
    static const char *const buffers[] = {"running_mean", "running_var", "num_batches_tracked"};
    char buf[256];
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        if (m->nodes[i].kind != DAT_LAYER_BATCHNORM)
            continue;
        for (int b = 0; b < 3; ++b) {
            buffer_name(buf, sizeof buf, &m->nodes[i], buffers[b]);
            if (strcmp(buf, name) == 0)
                return 1;
        }
    }
    return 0;
}

/* A tensor of the file the model does not have marks another model's
 * checkpoint, unless it is optimizer or trainer state. */
static dat_status check_unexpected(const dat_model *m, const char *path, const dat_st_file *f)
{
    for (int i = 0; i < f->n; ++i) {
        const char *nm = f->entries[i].name;
        if (!is_trainer_state(nm) && !is_model_tensor(m, nm))
            return dat_error(DAT_ERR_FORMAT, "dat_model_load",
                             "%s: tensor '%s' is not part of this model (a checkpoint of another "
                             "model?)", path, nm);
    }
    return DAT_OK;
}

dat_status dat_model_load(dat_model *model, const char *path, const dat_model_load_options *opts)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(path);
    dat_model_load_options o;
    dat_model_load_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_model_load_options, sizeof(dat_model_load_options));
        o = *opts;
    }
    dat_st_file f;
    DAT_TRY(dat_st_read(path, &f));
    host_state h = {malloc(model->params->nbytes),
                    malloc(model->buffers ? model->buffers->nbytes : 1)};
    int64_t *tracked = malloc((size_t)(model->n_bn ? model->n_bn : 1) * sizeof *tracked);
    dat_status s = h.params && h.buffers && tracked
                       ? gather(model, path, &f, &h, tracked)
                       : dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "staging buffers");
    if (s == DAT_OK && !o.ignore_unexpected)
        s = check_unexpected(model, path, &f);
    dat_ctx *ctx = model->ctx;
    if (s == DAT_OK)
        s = ctx->be->copy_from_host(ctx, model->params->data, h.params, model->params->nbytes);
    if (s == DAT_OK && model->buffers)
        s = ctx->be->copy_from_host(ctx, model->buffers->data, h.buffers, model->buffers->nbytes);
    if (s == DAT_OK)
        memcpy(model->num_batches_tracked, tracked, (size_t)model->n_bn * sizeof *tracked);
    release(&h);
    free(tracked);
    dat_st_free(&f);
    return s;
}
