/**
 * @file dat_common.h
 * @brief Export macro, status codes, error messages, logging and the version query.
 *
 * Every fallible libdat function returns a ::dat_status. On failure the
 * calling thread's dat_last_error() says what was wrong and where.
 */
#ifndef LIBDAT_DAT_COMMON_H
#define LIBDAT_DAT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dat_version.h"

#if defined(_WIN32)
#define DAT_API __declspec(dllimport)
#elif defined(__GNUC__)
#define DAT_API __attribute__((visibility("default")))
#else
#define DAT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Result of every fallible call. Values are fixed: they are part of the ABI.
 */
typedef enum dat_status {
    DAT_OK = 0,                   /**< Success. */
    DAT_ERR_INVALID_ARG = 1,      /**< An argument is NULL, out of range or inconsistent. */
    DAT_ERR_OUT_OF_MEMORY = 2,    /**< Host or device allocation failed. */
    DAT_ERR_NO_DEVICE = 3,        /**< The requested device (e.g. a CUDA GPU) is not present. */
    DAT_ERR_UNSUPPORTED = 4,      /**< The operation is not available on this backend or build. */
    DAT_ERR_IO = 5,               /**< A file could not be opened, read or written. */
    DAT_ERR_FORMAT = 6,           /**< A file or buffer is malformed (magic, sizes, header). */
    DAT_ERR_NUMERIC = 7,          /**< A NaN or Inf was found in a value that must be finite. */
    DAT_ERR_CUDA = 8,             /**< The CUDA runtime or a CUDA library reported an error. */
    DAT_ERR_COMM = 9,             /**< A collective failed (peer lost, size mismatch, ...). */
    DAT_ERR_TIMEOUT = 10,         /**< An operation did not finish within its time limit. */
    DAT_ERR_STATE = 11,           /**< The object is not in a state that allows the call. */
    DAT_ERR_INTERNAL = 12,        /**< A bug in libdat: please report it. */
    DAT_STATUS_FORCE_32BIT = 0x7fffffff
} dat_status;

/**
 * @brief Name of a status, e.g. "DAT_ERR_INVALID_ARG".
 * @param status  any value, listed in ::dat_status or not.
 * @return A static string owned by libdat (never NULL, never to be freed);
 *         "DAT_ERR_UNKNOWN" for values not listed in ::dat_status.
 */
DAT_API const char *dat_status_string(dat_status status);

/**
 * @brief Message of the last failing libdat call on the calling thread.
 *
 * The message says what was wrong and where, e.g.
 * "dat_tensor_create: shape[1] = -3 must be positive". Successful calls do
 * not clear it.
 * @return A thread-local string owned by libdat (never NULL, never to be
 *         freed), valid until the next libdat call on this thread fails; ""
 *         when no call has failed yet or since dat_clear_error().
 */
DAT_API const char *dat_last_error(void);

/**
 * @brief Clears the calling thread's last error message: dat_last_error()
 *        returns "" until a call fails again.
 */
DAT_API void dat_clear_error(void);

/**
 * @brief Version of the library the program runs with.
 * @return DAT_VERSION_NUMBER of the library (major * 10000 + minor * 100 +
 *         patch); compare it with the DAT_VERSION_NUMBER the program was
 *         compiled against.
 */
DAT_API uint32_t dat_version(void);

/**
 * @brief Version of the library the program runs with, "major.minor.patch".
 * @return A static string owned by libdat.
 */
DAT_API const char *dat_version_string(void);

/** @brief Severity of a log message. */
typedef enum dat_log_level {
    DAT_LOG_ERROR = 0,
    DAT_LOG_WARN = 1,
    DAT_LOG_INFO = 2,
    DAT_LOG_DEBUG = 3,
    DAT_LOG_LEVEL_FORCE_32BIT = 0x7fffffff
} dat_log_level;

/**
 * @brief Log callback. libdat never prints by itself (except the op profile
 *        that the DAT_PROFILE_OPS environment variable asks for,
 *        docs/building.md); it calls this instead.
 * @param level  severity of the message.
 * @param message  a NUL-terminated line without trailing newline, valid only
 *                 during the call.
 * @param user  the pointer given with the callback.
 */
typedef void (*dat_log_fn)(dat_log_level level, const char *message, void *user);

/**
 * @brief How values are combined: per-sample losses over a batch, or buffers
 *        over the ranks of a communicator (MEAN: the sum times 1/count, a float
 *        multiply). Values are fixed.
 */
typedef enum dat_reduction {
    DAT_REDUCE_MEAN = 0,
    DAT_REDUCE_SUM = 1,
    DAT_REDUCTION_FORCE_32BIT = 0x7fffffff
} dat_reduction;

/** @brief Element types of tensors. Values are fixed: they are part of the ABI. */
typedef enum dat_dtype {
    DAT_FLOAT32 = 0,
    DAT_BFLOAT16 = 1,
    DAT_INT32 = 2,
    DAT_UINT8 = 3,
    DAT_DTYPE_FORCE_32BIT = 0x7fffffff
} dat_dtype;

/**
 * @brief Size in bytes of one element of a dtype.
 * @param dtype  any value, listed in ::dat_dtype or not.
 * @return 4 for float32 and int32, 2 for bfloat16, 1 for uint8; 0 for a value
 *         not listed in ::dat_dtype.
 */
DAT_API size_t dat_dtype_size(dat_dtype dtype);

/**
 * @brief Name of a dtype, e.g. "float32".
 * @param dtype  any value, listed in ::dat_dtype or not.
 * @return A static string owned by libdat; "unknown" for values not in ::dat_dtype.
 */
DAT_API const char *dat_dtype_name(dat_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif
