/* Where each parameter lives in the flat buffers, and its initial value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "model.h"

static dat_status add_segment(dat_model *m, const char *prefix, const char *suffix,
                              int64_t offset, int64_t length, dat_segment_kind kind)
{
    dat_seg_entry *e = &m->segs[m->n_segs];
    e->ndim = 1;
    e->shape[0] = length;
    size_t len = strlen(prefix) + strlen(suffix) + 2;
    e->name = malloc(len);
    if (!e->name)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_layout", "cannot allocate names");
    snprintf(e->name, len, "%s.%s", prefix, suffix);
    e->offset = offset;
    e->length = length;
    e->kind = kind;
    m->n_segs++;
    return DAT_OK;
}

void dat_node_param_sizes(const dat_model *m, const dat_node *n, int64_t *wlen, int64_t *blen)
{
    const dat_node *in = &m->nodes[n->in[0]];
    *wlen = *blen = 0;
    switch (n->kind) {
    case DAT_LAYER_CONV2D:
        *wlen = (int64_t)n->c * in->c * n->spec.kernel * n->spec.kernel;
        *blen = n->spec.bias ? n->c : 0;
        break;
    case DAT_LAYER_LINEAR:
        *wlen = (int64_t)n->c * n->in_features;
        *blen = n->spec.bias ? n->c : 0;
        break;
    case DAT_LAYER_BATCHNORM:
        *wlen = *blen = n->c;
        break;
    default:
        break;
    }
}

/* PyTorch's weight shapes: conv [out, in, k, k], linear [out, in]; BN 1-D. */
static void weight_shape(const dat_model *m, const dat_node *n, dat_seg_entry *e)
{
    if (n->kind == DAT_LAYER_CONV2D) {
        e->ndim = 4;
        e->shape[0] = n->c;
        e->shape[1] = m->nodes[n->in[0]].c;
        e->shape[2] = e->shape[3] = n->spec.kernel;
    } else if (n->kind == DAT_LAYER_LINEAR) {
        e->ndim = 2;
        e->shape[0] = n->c;
        e->shape[1] = n->in_features;
    }
}

static dat_status create_flat(dat_model *m, int64_t count, dat_tensor **t)
{
    if (count == 0) {
        *t = NULL;
        return DAT_OK;
    }
    return dat_tensor_create(t, m->ctx, DAT_FLOAT32, 1, &count);
}

dat_status dat_model_layout(dat_model *m)
{
    m->segs = calloc((size_t)m->n_nodes * 2, sizeof *m->segs);
    if (!m->segs)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate segments");
    int64_t off = 0, buf = 0;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        int64_t wlen, blen;
        dat_node_param_sizes(m, n, &wlen, &blen);
        int bn = n->kind == DAT_LAYER_BATCHNORM;
        if (wlen) {
            n->w_off = off;
            DAT_TRY(add_segment(m, n->name, "weight", off, wlen,
                                bn ? DAT_SEGMENT_BN_WEIGHT : DAT_SEGMENT_WEIGHT));
            weight_shape(m, n, &m->segs[m->n_segs - 1]);
            off += wlen;
        }
        if (blen) {
            n->b_off = off;
            DAT_TRY(add_segment(m, n->name, "bias", off, blen,
                                bn ? DAT_SEGMENT_BN_BIAS : DAT_SEGMENT_BIAS));
            off += blen;
        }
        if (bn) {
            n->buf_off = buf;
            n->bn_index = m->n_bn++;
            buf += 2 * (int64_t)n->c;
        }
    }
    if (off == 0)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_model_builder_finish",
                         "the model has no parameters (add a convolution or linear layer)");
    m->num_batches_tracked = calloc((size_t)(m->n_bn ? m->n_bn : 1), sizeof(int64_t));
    if (!m->num_batches_tracked)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate BN counters");
    DAT_TRY(create_flat(m, off, &m->params));
    DAT_TRY(create_flat(m, off, &m->grads));
    return create_flat(m, buf, &m->buffers);
}

/* PyTorch's default: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * (kaiming_uniform with a = sqrt(5) reduces to that bound); BN gamma 1, beta 0;
 * running mean 0, running variance 1. Segment i draws from stream i. */
dat_status dat_model_init_params(dat_model *m, uint64_t seed)
{
    dat_ctx *ctx = m->ctx;
    float *p = m->params->data;
    for (int32_t i = 1; i < m->n_nodes; ++i) {
        dat_node *n = &m->nodes[i];
        if (n->w_off < 0)
            continue;
        if (n->kind == DAT_LAYER_BATCHNORM) {
            float one = 1.0f, zero = 0.0f;
            float *rb = (float *)m->buffers->data + n->buf_off;
            DAT_TRY(ctx->be->fill(ctx, p + n->w_off, (size_t)n->c, &one, sizeof one));
            DAT_TRY(ctx->be->fill(ctx, p + n->b_off, (size_t)n->c, &zero, sizeof zero));
            DAT_TRY(ctx->be->fill(ctx, rb, (size_t)n->c, &zero, sizeof zero));
            DAT_TRY(ctx->be->fill(ctx, rb + n->c, (size_t)n->c, &one, sizeof one));
            continue;
        }
        const dat_node *in = &m->nodes[n->in[0]];
        int64_t fan_in = n->kind == DAT_LAYER_LINEAR
                             ? n->in_features
                             : (int64_t)in->c * n->spec.kernel * n->spec.kernel;
        float bound = (float)(1.0 / sqrt((double)fan_in));
        int64_t wlen, blen;
        dat_node_param_sizes(m, n, &wlen, &blen);
        DAT_TRY(ctx->be->rng_uniform(ctx, p + n->w_off, (size_t)wlen, -bound, bound, seed,
                                     (uint64_t)(2 * i), NULL, 0));
        if (n->b_off >= 0)
            DAT_TRY(ctx->be->rng_uniform(ctx, p + n->b_off, (size_t)blen, -bound, bound, seed,
                                         (uint64_t)(2 * i + 1), NULL, 0));
    }
    return DAT_OK;
}
