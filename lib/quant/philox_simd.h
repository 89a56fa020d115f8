/*
 * Philox 4x32-10 blocks in bulk, for the quantizer's stochastic rounding:
 * the same words as dat_philox_block() (lib/core/philox.h), 16 blocks at a
 * time with AVX-512 or AVX2 where the CPU has them (checked once at run time),
 * else portable C.
 */
#ifndef LIBDAT_QUANT_PHILOX_SIMD_H
#define LIBDAT_QUANT_PHILOX_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* Blocks b0 .. b0 + nblocks - 1 of (key, stream); word j of block b0 + i goes to
 * w[4 i + j]. nblocks must be a multiple of DAT_PHILOX_BULK. */
#define DAT_PHILOX_BULK 16
void dat_philox_blocks_bulk(uint64_t key, uint64_t stream, uint64_t b0, size_t nblocks,
                            uint32_t *w);


/* One variant (0 portable, 1 AVX2, 2 AVX-512), for tests; returns 0 if this
 * CPU or build lacks it. */
int dat_philox_blocks_variant(int variant, uint64_t key, uint64_t stream, uint64_t b0,
                              size_t nblocks, uint32_t *w);

#endif
