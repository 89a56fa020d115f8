/* Output sizes of convolutions and pools, shared by every backend. */
#include "backend.h"
#include "error.h"

/* Sides, kernels, strides and padding above this are refused, so that the
 * int sums below cannot overflow (no real image comes near). */
#define DAT_DESC_MAX_SIDE (1 << 24)

static int out_size(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

static dat_status check_sides(const char *func, const char *what, int h, int w, int k_h, int k_w,
                              int stride, int pad)
{
    const int v[6] = {h, w, k_h, k_w, stride, pad};
    for (int i = 0; i < 6; ++i)
        if (v[i] > DAT_DESC_MAX_SIDE)
            return dat_error(DAT_ERR_INVALID_ARG, func, "%s: input %dx%d, kernel %dx%d, stride "
                             "%d, pad %d: sizes above %d are not supported", what, h, w, k_h,
                             k_w, stride, pad, DAT_DESC_MAX_SIDE);
    return DAT_OK;
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
    DAT_TRY(check_sides(func, "convolution", d->h_in, d->w_in, d->k_h, d->k_w, d->stride,
                        d->pad));
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
        d->pad < 0 || d->pad > d->k / 2)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "pooling sizes must be positive and pad <= k/2 (n %d, c %d, %dx%d, "
                         "k %d, stride %d, pad %d)",
                         d->n, d->c, d->h_in, d->w_in, d->k, d->stride, d->pad);
    DAT_TRY(check_sides(func, "pooling", d->h_in, d->w_in, d->k, d->k, d->stride, d->pad));
    if (d->h_in + 2 * d->pad < d->k || d->w_in + 2 * d->pad < d->k)
        return dat_error(DAT_ERR_INVALID_ARG, func, "pool window %d is larger than the input",
                         d->k);
    d->h_out = out_size(d->h_in, d->k, d->stride, d->pad);
    d->w_out = out_size(d->w_in, d->k, d->stride, d->pad);
    return DAT_OK;
}
