/* Bit packing of quantizer codes; fast paths where codes never straddle a word.
 * Little-endian hosts only, as the rest of libdat. */
#include "pack.h"

#include "../core/clones.h"

void dat_packer_init(dat_packer *p, uint32_t *out, int bits)
{
    p->out = out;
    p->acc = 0;
    p->nacc = 0;
    p->bits = bits;
}

/* Whole words of 32 / b codes, when the packer is word-aligned and b divides 32. */
DAT_CLONES
static size_t pack_aligned(dat_packer *p, const uint32_t *codes, size_t m)
{
    int b = p->bits;
    if (p->nacc != 0 || 32 % b != 0)
        return 0;
    size_t per = (size_t)(32 / b), words = m / per;
    uint32_t *out = p->out;
    /* Bytes and half-words: the little-endian layout is plain narrowing. */
    if (b == 8) {
        uint8_t *o = (uint8_t *)out;
#pragma omp simd
        for (size_t k = 0; k < words * 4; ++k)
            o[k] = (uint8_t)codes[k];
    } else if (b == 16) {
        uint16_t *o = (uint16_t *)out;
#pragma omp simd
        for (size_t k = 0; k < words * 2; ++k)
            o[k] = (uint16_t)codes[k];
    } else if (b == 4 || b == 2) {
        /* Whole bytes of 8 / b codes: the byte loops vectorize, a word loop did not. */
        uint8_t *o = (uint8_t *)out;
        size_t nbytes = words * 4;
        if (b == 4) {
#pragma omp simd
            for (size_t j = 0; j < nbytes; ++j)
                o[j] = (uint8_t)(codes[2 * j] | codes[2 * j + 1] << 4);
        } else {
#pragma omp simd
            for (size_t j = 0; j < nbytes; ++j)
                o[j] = (uint8_t)(codes[4 * j] | codes[4 * j + 1] << 2 | codes[4 * j + 2] << 4 |
                                 codes[4 * j + 3] << 6);
        }
    } else {
        for (size_t w = 0; w < words; ++w) {
            uint32_t word = 0;
            for (size_t k = 0; k < per; ++k)
                word |= codes[w * per + k] << (k * (size_t)b);
            out[w] = word;
        }
    }
    p->out += words;
    return words * per;
}

void dat_pack(dat_packer *p, const uint32_t *codes, size_t m)
{
    size_t done = pack_aligned(p, codes, m);
    uint64_t acc = p->acc;
    int nacc = p->nacc, b = p->bits;
    for (size_t k = done; k < m; ++k) {
        acc |= (uint64_t)codes[k] << nacc;
        nacc += b;
        if (nacc >= 32) {
            *p->out++ = (uint32_t)acc;
            acc >>= 32;
            nacc -= 32;
        }
    }
    p->acc = acc;
    p->nacc = nacc;
}

void dat_packer_flush(dat_packer *p)
{
    if (p->nacc > 0)
        *p->out++ = (uint32_t)p->acc;
    p->acc = 0;
    p->nacc = 0;
}

void dat_unpacker_init(dat_unpacker *u, const uint32_t *in, int bits)
{
    u->in = in;
    u->acc = 0;
    u->nacc = 0;
    u->bits = bits;
}

DAT_CLONES
static size_t unpack_aligned(dat_unpacker *u, uint32_t *codes, size_t m)
{
    int b = u->bits;
    if (u->nacc != 0 || 32 % b != 0)
        return 0;
    size_t per = (size_t)(32 / b), words = m / per;
    const uint32_t *in = u->in;
    if (b == 8) {
        const uint8_t *i8 = (const uint8_t *)in;
#pragma omp simd
        for (size_t k = 0; k < words * 4; ++k)
            codes[k] = i8[k];
    } else if (b == 16) {
        const uint16_t *i16 = (const uint16_t *)in;
#pragma omp simd
        for (size_t k = 0; k < words * 2; ++k)
            codes[k] = i16[k];
    } else if (b == 4 || b == 2) {
        const uint8_t *i8 = (const uint8_t *)in;
        size_t nbytes = words * 4;
        if (b == 4) {
#pragma omp simd
            for (size_t j = 0; j < nbytes; ++j) {
                codes[2 * j] = i8[j] & 15u;
                codes[2 * j + 1] = (uint32_t)i8[j] >> 4;
            }
        } else {
#pragma omp simd
            for (size_t j = 0; j < nbytes; ++j) {
                codes[4 * j] = i8[j] & 3u;
                codes[4 * j + 1] = ((uint32_t)i8[j] >> 2) & 3u;
                codes[4 * j + 2] = ((uint32_t)i8[j] >> 4) & 3u;
                codes[4 * j + 3] = (uint32_t)i8[j] >> 6;
            }
        }
    } else {
        uint32_t mask = b == 32 ? 0xffffffffu : (1u << b) - 1u;
        for (size_t w = 0; w < words; ++w)
            for (size_t k = 0; k < per; ++k)
                codes[w * per + k] = (in[w] >> (k * (size_t)b)) & mask;
    }
    u->in += words;
    return words * per;
}

void dat_unpack(dat_unpacker *u, uint32_t *codes, size_t m)
{
    size_t done = unpack_aligned(u, codes, m);
    uint64_t acc = u->acc;
    int nacc = u->nacc, b = u->bits;
    uint64_t mask = ((uint64_t)1 << b) - 1u;
    for (size_t k = done; k < m; ++k) {
        if (nacc < b) {
            acc |= (uint64_t)*u->in++ << nacc;
            nacc += 32;
        }
        codes[k] = (uint32_t)(acc & mask);
        acc >>= b;
        nacc -= b;
    }
    u->acc = acc;
    u->nacc = nacc;
}
