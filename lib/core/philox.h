/*
 * Philox 4x32-10 (Salmon et al., SC'11) and the transforms from its words to
 * uniform and normal floats. Shared verbatim by the CPU backend and the CUDA
 * kernels, so both backends draw bit-identical numbers.
 *
 * Bit-identity needs more than the same integer generator: the float
 * transforms must round the same way on both sides. So they use only
 * IEEE-exact operations (+, *, /, sqrt) written through DAT_RN_* macros that
 * forbid FMA contraction on the GPU, and their own log and sin/cos series
 * instead of libm / CUDA math, whose last bits differ.
 */
#ifndef LIBDAT_CORE_PHILOX_H
#define LIBDAT_CORE_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define DAT_HD __host__ __device__ __forceinline__
#else
#define DAT_HD static inline
#endif

#if defined(__CUDA_ARCH__)
#define DAT_RN_DMUL(a, b) __dmul_rn((a), (b))
#define DAT_RN_DADD(a, b) __dadd_rn((a), (b))
#define DAT_RN_FMUL(a, b) __fmul_rn((a), (b))
#define DAT_RN_FADD(a, b) __fadd_rn((a), (b))
#define DAT_RN_DSQRT(a) __dsqrt_rn(a)
#else
#include <math.h>
#define DAT_RN_DMUL(a, b) ((a) * (b))
#define DAT_RN_DADD(a, b) ((a) + (b))
#define DAT_RN_FMUL(a, b) ((a) * (b))
#define DAT_RN_FADD(a, b) ((a) + (b))
#define DAT_RN_DSQRT(a) sqrt(a)
#endif

typedef struct dat_philox_ctr {
    uint32_t v[4];
} dat_philox_ctr;

DAT_HD void dat_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

/* Philox 4x32 with R rounds; R = 10 is the standard generator. */
DAT_HD dat_philox_ctr dat_philox4x32_r(dat_philox_ctr c, uint32_t k0, uint32_t k1, int rounds)
{
    for (int r = 0; r < rounds; ++r) {
        uint32_t hi0, lo0, hi1, lo1;
        dat_philox_mulhilo(0xD2511F53u, c.v[0], &hi0, &lo0);
        dat_philox_mulhilo(0xCD9E8D57u, c.v[2], &hi1, &lo1);
        dat_philox_ctr n;
        n.v[0] = hi1 ^ c.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ c.v[3] ^ k1;
        n.v[3] = lo0;
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/*
 * libdat's keying: key = seed; counter = (block index, stream). Block b of
 * stream s gives the words 4b .. 4b+3 of that stream.
 */
DAT_HD dat_philox_ctr dat_philox_block(uint64_t seed, uint64_t stream, uint64_t block)
{
    dat_philox_ctr c;
    c.v[0] = (uint32_t)block;
    c.v[1] = (uint32_t)(block >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return dat_philox4x32_r(c, (uint32_t)seed, (uint32_t)(seed >> 32), 10);
}

/* Word w of stream s. Fills that want speed take whole blocks instead. */
DAT_HD uint32_t dat_philox_word(uint64_t seed, uint64_t stream, uint64_t w)
{
    dat_philox_ctr c = dat_philox_block(seed, stream, w >> 2);
    return c.v[w & 3];
}

/* Uniform in [0, 1) with 24 random bits: exactly representable in float. */
DAT_HD float dat_u32_to_unit(uint32_t x)
{
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* Uniform in (0, 1]: safe to take the log of. */
DAT_HD double dat_u32_to_unit_open0(uint32_t x)
{
    return ((double)(x >> 8) + 1.0) * (1.0 / 16777216.0);
}

/* low + (high - low) * u, rounded the same way on both backends. */
DAT_HD float dat_uniform_from_u32(uint32_t x, float low, float high)
{
    return DAT_RN_FADD(low, DAT_RN_FMUL(DAT_RN_FADD(high, -low), dat_u32_to_unit(x)));
}

/*
 * Natural log of u in (0, 1]. u = m * 2^e with m in [sqrt(1/2), sqrt(2)),
 * log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172; the atanh series
 * to s^23 is exact to ~1e-19 relative, far below float resolution.
 */
DAT_HD double dat_rng_log(double u)
{
    int e = 0;
    double m = u;
    while (m < 0.70710678118654752440) {
        m = DAT_RN_DMUL(m, 2.0);
        --e;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = DAT_RN_DMUL(s, s);
    double sum = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2)
        sum = DAT_RN_DADD(DAT_RN_DMUL(sum, s2), 1.0 / (double)k);
    double logm = DAT_RN_DMUL(DAT_RN_DMUL(2.0, s), sum);
    return DAT_RN_DADD(DAT_RN_DMUL((double)e, 0.69314718055994530942), logm);
}

/* sin and cos of x in [0, pi/4] by Taylor series to degree 21 / 20. */
DAT_HD void dat_rng_sincos_octant(double x, double *s, double *c)
{
    double x2 = DAT_RN_DMUL(x, x);
    double ps = 1.0, pc = 1.0;
    for (int k = 20; k >= 2; k -= 2) {
        ps = DAT_RN_DADD(1.0, DAT_RN_DMUL(-x2, ps / (double)(k * (k + 1))));
        pc = DAT_RN_DADD(1.0, DAT_RN_DMUL(-x2, pc / (double)(k * (k - 1))));
    }
    *s = DAT_RN_DMUL(x, ps);
    *c = pc;
}

/*
 * sin and cos of 2*pi*t for t in [0, 1). The turn splits into an octant index
 * and a remainder, so no large-argument reduction is needed; for the normals'
 * t = k / 2^24 every step of it is exact (other t round in the mirror, 1 - f,
 * the same way on both sides; lib/optim/schedule.h's cosine).
 */
DAT_HD void dat_rng_sincos_turn(double t, double *s, double *c)
{
    double t8 = DAT_RN_DMUL(t, 8.0); /* exact: t has 24 bits */
    int oct = (int)t8;
    double f = t8 - (double)oct; /* exact */
    if (oct & 1)
        f = 1.0 - f; /* exact: mirror within the quarter */
    double x = DAT_RN_DMUL(f, 0.78539816339744830962);
    double so, co;
    dat_rng_sincos_octant(x, &so, &co);
    /* In quadrant q = oct/2 the angle is q*pi/2 + a, a in [0, pi/2); odd
     * octants mirrored a = pi/2 - x, which swaps sin and cos. */
    double sa = (oct & 1) ? co : so;
    double ca = (oct & 1) ? so : co;
    switch (oct >> 1) {
    case 0: *s = sa; *c = ca; break;
    case 1: *s = ca; *c = -sa; break;
    case 2: *s = -sa; *c = -ca; break;
    default: *s = -ca; *c = sa; break;
    }
}

/*
 * Box–Muller on the word pair (a, b): z0 = r cos(2 pi u2), z1 = r sin(2 pi u2)
 * with r = sqrt(-2 log u1), u1 in (0, 1], u2 in [0, 1).
 */
DAT_HD void dat_box_muller(uint32_t a, uint32_t b, float *z0, float *z1)
{
    double r = DAT_RN_DSQRT(DAT_RN_DMUL(-2.0, dat_rng_log(dat_u32_to_unit_open0(a))));
    double s, c;
    dat_rng_sincos_turn((double)dat_u32_to_unit(b), &s, &c);
    *z0 = (float)DAT_RN_DMUL(r, c);
    *z1 = (float)DAT_RN_DMUL(r, s);
}

/* mean + std * z, rounded the same way on both backends. */
DAT_HD float dat_normal_affine(float z, float mean, float std)
{
    return DAT_RN_FADD(mean, DAT_RN_FMUL(std, z));
}

#endif
