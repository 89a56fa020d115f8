#include "shuffle.h"

#include "../core/philox.h"

uint64_t dat_uniform_below(uint64_t r, uint64_t n)
{
    /* The high half of the 128-bit product r * n, from 32-bit pieces. */
    uint64_t r_lo = (uint32_t)r, r_hi = r >> 32, n_lo = (uint32_t)n, n_hi = n >> 32;
    uint64_t lo_lo = r_lo * n_lo, hi_lo = r_hi * n_lo, lo_hi = r_lo * n_hi, hi_hi = r_hi * n_hi;
    uint64_t mid = (lo_lo >> 32) + (uint32_t)hi_lo + (uint32_t)lo_hi;
    return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (mid >> 32);
}

void dat_shuffle_permutation(uint64_t seed, uint64_t stream, int64_t n, int64_t *perm)
{
    for (int64_t i = 0; i < n; ++i)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; --i) {
        dat_philox_ctr c = dat_philox_block(seed, stream, (uint64_t)i);
        uint64_t r = (uint64_t)c.v[0] << 32 | c.v[1];
        int64_t j = (int64_t)dat_uniform_below(r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
