/*
 * Bit packing of b-bit codes (1 <= b <= 32) into little-endian 32-bit words:
 * code k occupies bits [k*b, k*b + b) of the word stream. A packer carries a
 * partial word across calls, so a bucket can be packed in pieces.
 */
#ifndef LIBDAT_QUANT_PACK_H
#define LIBDAT_QUANT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "../core/philox.h" /* DAT_HD */

typedef struct dat_packer {
    uint32_t *out;  /* next word to write */
    uint64_t acc;   /* pending bits, lowest first */
    int nacc;       /* number of pending bits, < 32 */
    int bits;
} dat_packer;

typedef struct dat_unpacker {
    const uint32_t *in; /* next word to read */
    uint64_t acc;
    int nacc;
    int bits;
} dat_unpacker;

/* Words taken by m codes of b bits (also on the device: kernels/ops_quant.cu). */
DAT_HD size_t dat_pack_words(size_t m, int bits)
{
    return (m * (size_t)bits + 31) / 32;
}

void dat_packer_init(dat_packer *p, uint32_t *out, int bits);
/* Appends m codes (each < 2^bits). */
void dat_pack(dat_packer *p, const uint32_t *codes, size_t m);
/* Writes the last partial word, zero-padded. */
void dat_packer_flush(dat_packer *p);

void dat_unpacker_init(dat_unpacker *u, const uint32_t *in, int bits);
/* Reads the next m codes. */
void dat_unpack(dat_unpacker *u, uint32_t *codes, size_t m);

#endif
