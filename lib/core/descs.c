/* Output sizes of convolutions and pools, shared by every backend. */
#include "backend.h"
#include "error.h"

static int out_size(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

dat_status dat_conv_desc_init(const char *func, dat_conv_desc *d)
{
    if (d->n <= 0 || d->c_in <= 0 || d->h_in <= 0 || d->w_in <= 0 || d->c_out <= 0 ||
        d->k_h <= 0 || d->k_w <= 0 || d->stride <= 0 || d->pad < 0)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "convolution sizes must be positive (n %d, c_in %d, %dx%d, c_out %d, "
                         "kernel %dx%d, stride %d, pad %d)",
                         d->n, d->c_in, d->h_in, d->w_in, d->c_out, d->k_h, d->k_w, d->stride,
                         d->pad);
    if (d->h_in + 2 * d->pad < d->k_h || d->w_in + 2 * d->pad < d->k_w)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "kernel %dx%d is larger than the padded input %dx%d", d->k_h, d->k_w,
                         d->h_in + 2 * d->pad, d->w_in + 2 * d->pad);
    d->h_out = out_size(d->h_in, d->k_h, d->stride, d->pad);
    d->w_out = out_size(d->w_in, d->k_w, d->stride, d->pad);
    return DAT_OK;
}

dat_status dat_pool_desc_init(const char *func, dat_pool_desc *d)
{
    if (d->n <= 0 || d->c <= 0 || d->h_in <= 0 || d->w_in <= 0 || d->k <= 0 || d->stride <= 0 ||
        d->pad < 0 || 2 * d->pad > d->k)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "pooling sizes must be positive and pad <= k/2 (n %d, c %d, %dx%d, "
                         "k %d, stride %d, pad %d)",
                         d->n, d->c, d->h_in, d->w_in, d->k, d->stride, d->pad);
    if (d->h_in + 2 * d->pad < d->k || d->w_in + 2 * d->pad < d->k)
        return dat_error(DAT_ERR_INVALID_ARG, func, "pool window %d is larger than the input",
                         d->k);
    d->h_out = out_size(d->h_in, d->k, d->stride, d->pad);
    d->w_out = out_size(d->w_in, d->k, d->stride, d->pad);
    return DAT_OK;
}
