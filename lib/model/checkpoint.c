/* dat_model_save / dat_model_load: the model's state_dict as safetensors, with
 * PyTorch's names and shapes, so weights move between PyTorch and libdat. */
#include <locale.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "../io/safetensors.h"
#include "model.h"

/* Host copies of the flat parameters and BN buffers (the tensors may be on a GPU). */
typedef struct host_state {
    float *params, *buffers;
    int64_t *tracked; /* num_batches_tracked per BN layer */
} host_state;

/* One tensor of the state_dict and where it lies in a host_state. */
typedef struct model_tensor {
    char name[256];
    dat_st_dtype dtype;
    int ndim;
    int64_t shape[4];
    void *data;
    size_t bytes;
} model_tensor;

static dat_status fetch(dat_model *m, host_state *h, const char *fn)
{
    dat_ctx *ctx = m->ctx;
    h->params = malloc(m->params->nbytes);
    h->buffers = malloc(m->buffers ? m->buffers->nbytes : 1);
    h->tracked = malloc((size_t)(m->n_bn ? m->n_bn : 1) * sizeof *h->tracked);
    if (!h->params || !h->buffers || !h->tracked)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, fn, "host copy of the parameters");
    DAT_TRY(ctx->be->copy_to_host(ctx, h->params, m->params->data, m->params->nbytes));
    if (m->buffers)
        DAT_TRY(ctx->be->copy_to_host(ctx, h->buffers, m->buffers->data, m->buffers->nbytes));
    memcpy(h->tracked, m->num_batches_tracked, (size_t)m->n_bn * sizeof *h->tracked);
    return DAT_OK;
}

static void release(host_state *h)
{
    free(h->params);
    free(h->buffers);
    free(h->tracked);
}

static void add_tensor(model_tensor *t, const char *prefix, const char *what, dat_st_dtype dtype,
                       int ndim, const int64_t *shape, void *data)
{
    snprintf(t->name, sizeof t->name, "%s%s%s", prefix, what ? "." : "", what ? what : "");
    t->dtype = dtype;
    t->ndim = ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; ++d)
        n *= (size_t)(t->shape[d] = shape[d]);
    t->data = data;
    t->bytes = n * (dtype == DAT_ST_I64 ? sizeof(int64_t) : sizeof(float));
}

/* The state_dict in PyTorch's order: every parameter, then each BN layer's
 * running_mean, running_var and num_batches_tracked. *count receives its size;
 * free() the result. */
static model_tensor *list_tensors(const dat_model *m, const host_state *h, int32_t *count)
{
    model_tensor *t = calloc((size_t)(m->n_segs + 3 * m->n_bn), sizeof *t);
    if (!t)
        return NULL;
    int32_t k = 0;
    for (int32_t s = 0; s < m->n_segs; ++s) {
        const dat_seg_entry *e = &m->segs[s];
        add_tensor(&t[k++], e->name, NULL, DAT_ST_F32, e->ndim, e->shape, h->params + e->offset);
    }
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        const dat_node *n = &m->nodes[i];
        if (n->kind != DAT_LAYER_BATCHNORM)
            continue;
        int64_t c = n->c;
        float *b = h->buffers + n->buf_off;
        add_tensor(&t[k++], n->name, "running_mean", DAT_ST_F32, 1, &c, b);
        add_tensor(&t[k++], n->name, "running_var", DAT_ST_F32, 1, &c, b + c);
        add_tensor(&t[k++], n->name, "num_batches_tracked", DAT_ST_I64, 0, NULL,
                   &h->tracked[n->bn_index]);
    }
    *count = k;
    return t;
}

/* One channel list of the input normalization as the metadata records it:
 * "none", or the values with 9 digits (which give each float back exactly).
 * malloc'ed; NULL when out of memory. */
static char *normalization_text(const dat_model *m, const float *v)
{
    size_t cap = v ? (size_t)m->in_c * 16 + 1 : 5, used = 0;
    char *t = malloc(cap);
    if (!t || !v)
        return t ? strcpy(t, "none") : NULL;
    /* In the C locale on this thread, whatever the host set: a file's text does
     * not change with LC_NUMERIC (a decimal comma would also split the list). */
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c) {
        free(t);
        return NULL;
    }
    locale_t host = uselocale(c);
    t[0] = '\0';
    for (int32_t i = 0; i < m->in_c; ++i)
        used += (size_t)snprintf(t + used, cap - used, "%s%.9g", i ? "," : "", (double)v[i]);
    uselocale(host);
    freelocale(c);
    return t;
}

/* A checkpoint records its model's input normalization; weights trained on
 * normalized inputs give wrong answers on others, so a model that normalizes
 * differently is refused. Files without the record (PyTorch's, older
 * libdat's) are not checked. */
static dat_status check_normalization(const dat_model *m, const char *path, const dat_st_file *f)
{
    const char *fm = dat_st_meta(f, "input_mean"), *fs = dat_st_meta(f, "input_std");
    if (!fm || !fs)
        return DAT_OK;
    char *mean = normalization_text(m, m->norm_mean), *std = normalization_text(m, m->norm_std);
    dat_status s = DAT_OK;
    if (!mean || !std)
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_load", "normalization text");
    else if (strcmp(fm, mean) != 0 || strcmp(fs, std) != 0)
        s = dat_error(DAT_ERR_FORMAT, "dat_model_load",
                      "%s: its model's input normalization is mean %.200s, std %.200s; this "
                      "model's is mean %.200s, std %.200s (build it with the same "
                      "dat_model_options mean and std)",
                      path, fm, fs, mean, std);
    free(mean);
    free(std);
    return s;
}

dat_status dat_model_write(dat_model *model, const char *path, dat_model_extra_fn extra,
                           void *user)
{
    host_state h = {0};
    int32_t n = 0;
    model_tensor *t = NULL;
    dat_status s = fetch(model, &h, "dat_model_save");
    if (s == DAT_OK && !(t = list_tensors(model, &h, &n)))
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_save", "tensor list");
    if (s == DAT_OK) {
        dat_st_writer w;
        dat_st_writer_init(&w);
        for (int32_t i = 0; i < n; ++i)
            dat_st_writer_add(&w, t[i].name, t[i].dtype, t[i].ndim, t[i].shape, t[i].data);
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d", (int)model->in_c, (int)model->in_h,
                 (int)model->in_w);
        dat_st_writer_meta(&w, "format", "pt");
        dat_st_writer_meta(&w, "libdat_version", DAT_VERSION_STRING);
        dat_st_writer_meta(&w, "input_shape", shape);
        char *mean = normalization_text(model, model->norm_mean);
        char *std = normalization_text(model, model->norm_std);
        if (!mean || !std)
            s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_save", "normalization text");
        else {
            dat_st_writer_meta(&w, "input_mean", mean);
            dat_st_writer_meta(&w, "input_std", std);
            if (extra)
                extra(&w, user);
            s = dat_st_write(&w, path);
        }
        free(mean);
        free(std);
        dat_st_writer_free(&w);
    }
    release(&h);
    free(t);
    return s;
}

dat_status dat_model_save(dat_model *model, const char *path)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(path);
    dat_status s = dat_model_write(model, path, NULL, NULL);
    return s == DAT_OK ? DAT_OK : dat_error_context(s, __func__);
}

dat_status (dat_model_load_options_init)(dat_model_load_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_model_load_options){.size = sizeof(dat_model_load_options)};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_model_load_options)

/* Does the file hold tensor t with its dtype and shape? Else, with `why`, a
 * message naming it. */
static int fits(const dat_st_file *f, const model_tensor *t, char *why, size_t size)
{
    const dat_st_entry *e = dat_st_find(f, t->name);
    if (!e) {
        snprintf(why, size, "tensor '%s' is missing", t->name);
        return 0;
    }
    int same = e->dtype == t->dtype && e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; ++d)
        same = e->shape[d] == t->shape[d];
    if (same)
        return 1;
    char want[96] = "", got[96] = "";
    for (int d = 0; d < t->ndim; ++d)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                 (long long)t->shape[d]);
    for (int d = 0; d < e->ndim; ++d)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                 (long long)e->shape[d]);
    snprintf(why, size, "tensor '%s' is %s [%s], the model needs %s [%s]", t->name,
             dat_st_dtype_name(e->dtype), got, dat_st_dtype_name(t->dtype), want);
    return 0;
}

/* The classifier's module name ("fc", "net.6"): the last layer's. */
static const char *head_module(const dat_model *m, size_t *len)
{
    const char *name = m->segs[m->n_segs - 1].name, *dot = strrchr(name, '.');
    *len = dot ? (size_t)(dot - name) : strlen(name);
    return name;
}

static int in_head(const char *name, const char *head, size_t len)
{
    return head && strncmp(name, head, len) == 0 && name[len] == '.';
}

/* Checks every tensor and copies it into h (which holds the model's own state);
 * loaded[i] says which came from the file. The model is untouched so far. */
static dat_status gather(const dat_model *m, const char *path, const dat_st_file *f,
                         const dat_model_load_options *o, model_tensor *t, int32_t n,
                         int32_t *loaded)
{
    char why[512];
    size_t head_len = 0;
    const char *head = o->reinit_head ? head_module(m, &head_len) : NULL;
    /* the model keeps its own classifier: always, or when the file's does not fit */
    int keep_head = o->reinit_head == DAT_REINIT_HEAD_ALWAYS;
    for (int32_t i = 0; i < n && head && !keep_head; ++i)
        keep_head |= in_head(t[i].name, head, head_len) && !fits(f, &t[i], why, sizeof why);
    for (int32_t i = 0; i < n; ++i) {
        loaded[i] = !(keep_head && in_head(t[i].name, head, head_len));
        if (!loaded[i])
            continue;
        if (!fits(f, &t[i], why, sizeof why))
            return dat_error(DAT_ERR_FORMAT, "dat_model_load", "%s: %s (a checkpoint of another "
                             "model?)", path, why);
        memcpy(t[i].data, dat_st_find(f, t[i].name)->data, t[i].bytes);
    }
    return DAT_OK;
}

static int is_trainer_state(const char *name)
{
    return strncmp(name, "optim.", 6) == 0 || strncmp(name, "train.", 6) == 0;
}

/* A tensor of the file the model does not have marks another model's
 * checkpoint, unless it is optimizer or trainer state. */
static dat_status check_unexpected(const char *path, const dat_st_file *f, const model_tensor *t,
                                   int32_t n)
{
    for (int i = 0; i < f->n; ++i) {
        const char *nm = f->entries[i].name;
        int known = is_trainer_state(nm);
        for (int32_t k = 0; k < n && !known; ++k)
            known = strcmp(t[k].name, nm) == 0;
        if (!known)
            return dat_error(DAT_ERR_FORMAT, "dat_model_load",
                             "%s: tensor '%s' is not part of this model (a checkpoint of another "
                             "model?)", path, nm);
    }
    return DAT_OK;
}

static dat_status upload(dat_model *m, const host_state *h)
{
    dat_ctx *ctx = m->ctx;
    DAT_TRY(ctx->be->copy_from_host(ctx, m->params->data, h->params, m->params->nbytes));
    if (m->buffers)
        DAT_TRY(ctx->be->copy_from_host(ctx, m->buffers->data, h->buffers, m->buffers->nbytes));
    memcpy(m->num_batches_tracked, h->tracked, (size_t)m->n_bn * sizeof *h->tracked);
    return DAT_OK;
}

/* The options of a caller built against any earlier, smaller version. */
static dat_status read_options(const dat_model_load_options *opts, dat_model_load_options *o)
{
    dat_model_load_options_init(o);
    if (!opts)
        return DAT_OK;
    DAT_CHECK_OPTIONS_SIZE(opts, dat_model_load_options,
                           offsetof(dat_model_load_options, reinit_head));
    memcpy(o, opts, opts->size);
    o->size = sizeof *o;
    if ((int)o->reinit_head < DAT_REINIT_HEAD_NEVER || o->reinit_head > DAT_REINIT_HEAD_ALWAYS)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_load",
                         "reinit_head = %d is not a dat_reinit_head", (int)o->reinit_head);
    return DAT_OK;
}

dat_status dat_model_load(dat_model *model, const char *path, const dat_model_load_options *opts)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(path);
    dat_model_load_options o;
    DAT_TRY(read_options(opts, &o));
    dat_st_file f;
    DAT_TRY(dat_st_read(path, &f));
    host_state h = {0};
    int32_t n = 0, *loaded = NULL;
    model_tensor *t = NULL;
    dat_status s = check_normalization(model, path, &f);
    if (s == DAT_OK)
        s = fetch(model, &h, __func__);
    if (s == DAT_OK && (!(t = list_tensors(model, &h, &n)) ||
                        !(loaded = malloc((size_t)(n ? n : 1) * sizeof *loaded))))
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "tensor list");
    if (s == DAT_OK)
        s = gather(model, path, &f, &o, t, n, loaded);
    if (s == DAT_OK && !o.ignore_unexpected)
        s = check_unexpected(path, &f, t, n);
    if (s == DAT_OK)
        s = upload(model, &h);
    for (int32_t i = 0; s == DAT_OK && o.on_tensor && i < n; ++i)
        o.on_tensor(t[i].name, loaded[i], o.user);
    release(&h);
    free(t);
    free(loaded);
    dat_st_free(&f);
    return s;
}
