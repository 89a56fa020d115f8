/**
 * @file dat_segment.h
 * @brief Segments: the per-layer slices of a flat parameter buffer.
 *
 * A model keeps all its parameters in one flat float32 buffer (and all
 * gradients in another of the same layout). A segment names one tensor of it
 * (a PyTorch state_dict name such as "layer1.0.conv1.weight") and says where
 * it lies. Collectives move the flat buffer; the LALR optimizer computes
 * layer-wise norms over segments.
 */
#ifndef LIBDAT_DAT_SEGMENT_H
#define LIBDAT_DAT_SEGMENT_H

#include "dat_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief What a segment holds. Values are fixed. */
typedef enum dat_segment_kind {
    DAT_SEGMENT_WEIGHT = 0,     /**< convolution or linear weight */
    DAT_SEGMENT_BIAS = 1,       /**< convolution or linear bias */
    DAT_SEGMENT_BN_WEIGHT = 2,  /**< batch-norm scale (gamma) */
    DAT_SEGMENT_BN_BIAS = 3,    /**< batch-norm shift (beta) */
    DAT_SEGMENT_KIND_FORCE_32BIT = 0x7fffffff
} dat_segment_kind;

/**
 * @brief One segment of a flat parameter buffer. Set `size` to
 *        sizeof(dat_segment) before passing it to a function that fills it.
 */
typedef struct dat_segment {
    uint32_t size;          /**< sizeof(dat_segment), set by the caller. */
    const char *name;       /**< state_dict name; owned by the object that describes it. */
    int64_t offset;         /**< first element in the flat buffer */
    int64_t length;         /**< number of elements */
    dat_segment_kind kind;  /**< what the segment holds */
} dat_segment;

#ifdef __cplusplus
}
#endif

#endif
