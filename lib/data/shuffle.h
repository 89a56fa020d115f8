/* Seeded permutations for the per-epoch shuffle (Philox 4x32-10). */
#ifndef LIBDAT_DATA_SHUFFLE_H
#define LIBDAT_DATA_SHUFFLE_H

#include <stdint.h>

/* Streams of the data set's Philox key: the shuffle of epoch e uses stream e,
 * the augmentation of epoch e stream DAT_AUGMENT_STREAM + e. */
#define DAT_SHUFFLE_MAX_EPOCH (((int64_t)1 << 62) - 1)
#define DAT_AUGMENT_STREAM ((uint64_t)1 << 62)

/* floor(r * n / 2^64): an integer in [0, n) from 64 random bits, with a bias
 * below n / 2^64. */
uint64_t dat_uniform_below(uint64_t r, uint64_t n);

/* Fills perm[0..n) with a permutation of 0..n-1: Fisher-Yates from the top,
 * swap i with j = uniform_below(r_i, i + 1), r_i the words of Philox block i
 * of (seed, stream). A pure function of (seed, stream, n). */
void dat_shuffle_permutation(uint64_t seed, uint64_t stream, int64_t n, int64_t *perm);

#endif
