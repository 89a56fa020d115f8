/* Hot loops of the quantizer and the CPU backend are compiled for AVX-512 and AVX2
 * too, picked at load time (GCC function multiversioning). Every clone gives the
 * same bits: integer Philox, element-wise float ops without contraction
 * (-ffp-contract=off), reductions in a fixed lane order. */
#ifndef LIBDAT_CORE_CLONES_H
#define LIBDAT_CORE_CLONES_H

/* Not under ThreadSanitizer: the clones' ifunc resolvers run while the dynamic
 * loader relocates libdat, before TSan's runtime is up, and its entry hook there
 * crashes the load. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__)
#define DAT_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define DAT_CLONES
#endif

#endif
