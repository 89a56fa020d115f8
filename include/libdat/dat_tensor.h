/**
 * @file dat_tensor.h
 * @brief Dense tensors on a context's device, and their fills from the
 *        context's counter-based random generator.
 *
 * Layout is row-major (NCHW for images). Data moves between host and device
 * only through dat_tensor_write() / dat_tensor_read() / dat_tensor_copy(), or
 * directly through dat_tensor_host_data() for CPU tensors.
 *
 * Random fills are pure functions of (context seed, stream, offset, index):
 * element i of a fill takes the value at position offset + i of the stream,
 * identically on the CPU and on CUDA, so fills can be split or repeated.
 */
#ifndef LIBDAT_DAT_TENSOR_H
#define LIBDAT_DAT_TENSOR_H

#include "dat_ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Largest number of dimensions of a tensor. */
#define DAT_TENSOR_MAX_DIMS 8

/** @brief Opaque tensor. */
typedef struct dat_tensor dat_tensor;

/**
 * @brief Creates a tensor of @p dtype and @p shape on the context's device.
 *        Contents are zero.
 * @param[out] out  receives the tensor, owned by the caller and freed with
 *                  dat_tensor_destroy() before @p ctx; NULL on failure.
 * @param ctx  the context whose device holds the data.
 * @param dtype  element type.
 * @param ndim  0 (a scalar) to DAT_TENSOR_MAX_DIMS.
 * @param shape  @p ndim sizes, each > 0 (may be NULL when ndim is 0); copied.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a bad dtype, ndim or
 *         size, or a total size that overflows; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_tensor_create(dat_tensor **out, dat_ctx *ctx, dat_dtype dtype,
                                     int32_t ndim, const int64_t *shape);

/**
 * @brief Destroys a tensor and frees its data.
 * @param tensor  a tensor made by dat_tensor_create(), or NULL (a no-op).
 *                Never pass tensors owned by a model (dat_model_params() ...).
 */
DAT_API void dat_tensor_destroy(dat_tensor *tensor);

/**
 * @brief Shape of a tensor.
 * @param tensor  the tensor.
 * @param[out] ndim  receives the number of dimensions (may be NULL).
 * @param[out] shape  receives ndim sizes; room for DAT_TENSOR_MAX_DIMS (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p tensor is NULL.
 */
DAT_API dat_status dat_tensor_shape(const dat_tensor *tensor, int32_t *ndim, int64_t *shape);

/**
 * @brief Element type of a tensor.
 * @param tensor  the tensor.
 * @param[out] dtype  receives the dtype.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_tensor_dtype(const dat_tensor *tensor, dat_dtype *dtype);

/**
 * @brief Number of elements of a tensor (1 for a scalar).
 * @param tensor  the tensor.
 * @param[out] numel  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_tensor_numel(const dat_tensor *tensor, int64_t *numel);

/**
 * @brief Size of a tensor's data in bytes (elements times dat_dtype_size()).
 * @param tensor  the tensor.
 * @param[out] nbytes  receives the size.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_tensor_nbytes(const dat_tensor *tensor, size_t *nbytes);

/**
 * @brief Changes the shape without moving data; the element count must stay.
 * @param tensor  the tensor.
 * @param ndim  0 to DAT_TENSOR_MAX_DIMS.
 * @param shape  @p ndim sizes, each > 0; copied.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a new shape that is
 *         invalid or has another element count (the tensor is unchanged then).
 */
DAT_API dat_status dat_tensor_reshape(dat_tensor *tensor, int32_t ndim, const int64_t *shape);

/**
 * @brief Pointer to the data of a CPU tensor, for zero-copy access.
 * @param tensor  a tensor of a CPU context.
 * @param[out] data  receives the pointer, owned by the tensor and valid until
 *                   it is destroyed; the data are row-major elements of its dtype.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers; DAT_ERR_UNSUPPORTED
 *         for a tensor on a GPU (use dat_tensor_read()).
 */
DAT_API dat_status dat_tensor_host_data(dat_tensor *tensor, void **data);

/**
 * @brief Copies host memory into the tensor.
 * @param tensor  the destination.
 * @param src  host memory of @p nbytes bytes, row-major elements of the
 *             tensor's dtype; read during the call only.
 * @param nbytes  must equal the tensor's size in bytes.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a size mismatch;
 *         DAT_ERR_CUDA if the copy to the GPU fails.
 */
DAT_API dat_status dat_tensor_write(dat_tensor *tensor, const void *src, size_t nbytes);

/**
 * @brief Copies the tensor into host memory.
 * @param tensor  the source.
 * @param[out] dst  host memory of @p nbytes bytes.
 * @param nbytes  must equal the tensor's size in bytes.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a size mismatch;
 *         DAT_ERR_CUDA if the copy from the GPU fails.
 */
DAT_API dat_status dat_tensor_read(const dat_tensor *tensor, void *dst, size_t nbytes);

/**
 * @brief Copies @p src into @p dst.
 * @param dst  the destination.
 * @param src  the source: same dtype and shape; it may live in another context
 *             (CPU and CUDA).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, another dtype or
 *         shape; DAT_ERR_CUDA.
 */
DAT_API dat_status dat_tensor_copy(dat_tensor *dst, const dat_tensor *src);

/**
 * @brief Sets every element to @p value, converted to the tensor's dtype.
 * @param tensor  the tensor.
 * @param value  the value; for integer dtypes an integer in the dtype's range.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or a @p value not representable
 *         in an integer dtype (not finite, fractional or out of range).
 */
DAT_API dat_status dat_tensor_fill(dat_tensor *tensor, double value);

/**
 * @brief Fills a float32 or bfloat16 tensor with uniform values in [low, high).
 * @param tensor  the tensor.
 * @param low, high  the interval, finite, low <= high, its width high - low
 *                   finite in float (at most FLT_MAX).
 * @param stream  selects an independent stream of the context's generator.
 * @param offset  position in the stream of element 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL, an integer dtype, non-finite
 *         bounds or width, or low > high.
 */
DAT_API dat_status dat_tensor_fill_uniform(dat_tensor *tensor, float low, float high,
                                           uint64_t stream, uint64_t offset);

/**
 * @brief Fills a float32 or bfloat16 tensor with normal values N(mean, std^2)
 *        (Box–Muller on the Philox stream).
 * @param tensor  the tensor.
 * @param mean  the mean, finite.
 * @param std  the standard deviation, finite, >= 0.
 * @param stream  selects an independent stream of the context's generator.
 * @param offset  position in the stream of element 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL, an integer dtype, non-finite
 *         values or std < 0.
 */
DAT_API dat_status dat_tensor_fill_normal(dat_tensor *tensor, float mean, float std,
                                          uint64_t stream, uint64_t offset);

#ifdef __cplusplus
}
#endif

#endif
