/*
 * Finite-difference checks for the CPU ops. The reference is the op written
 * naively in double precision in the test; central differences on it give
 * gradients accurate to ~1e-9, against which the backend's float32 analytic
 * backward is compared with a norm-wise relative error:
 *     err = ||g_backend - g_ref||_2 / max(||g_ref||_2, tiny)
 */
#ifndef LIBDAT_TESTS_GRADCHECK_H
#define LIBDAT_TESTS_GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* A scalar function of a double vector: L(x), with user data. */
typedef double (*dat_gc_fn)(const double *x, void *user);

/* Central-difference gradient of f at x (x is restored), written to g. */
static inline void dat_gc_numeric_grad(dat_gc_fn f, void *user, double *x, size_t n, double h,
                                       double *g)
{
    for (size_t i = 0; i < n; ++i) {
        double xi = x[i];
        x[i] = xi + h;
        double fp = f(x, user);
        x[i] = xi - h;
        double fm = f(x, user);
        x[i] = xi;
        g[i] = (fp - fm) / (2 * h);
    }
}

/* Norm-wise relative error of a float32 result against a double reference. */
static inline double dat_gc_rel_err(const float *got, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

/* Deterministic values in [-1, 1) from a 64-bit LCG: tests must not depend on libc rand. */
static inline void dat_gc_fill(double *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (double)(s >> 11) / (double)(1ull << 52) - 1.0;
    }
}

static inline void dat_gc_to_float(const double *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        y[i] = (float)x[i];
}

/* Rounds a double vector to float precision in place, so the reference and
 * the backend see the very same inputs. */
static inline void dat_gc_round_to_float(double *x, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        x[i] = (double)(float)x[i];
}

#endif
