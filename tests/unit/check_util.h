/* Shared by the Check unit tests: a runner and assertions on libdat statuses. */
#ifndef LIBDAT_TESTS_CHECK_UTIL_H
#define LIBDAT_TESTS_CHECK_UTIL_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libdat/dat.h"

/* Fails with the status name and libdat's message unless s == DAT_OK. */
#define ck_assert_dat_ok(expr)                                                          \
    do {                                                                                \
        dat_status ck_s_ = (expr);                                                      \
        ck_assert_msg(ck_s_ == DAT_OK, "%s returned %s: %s", #expr,                     \
                      dat_status_string(ck_s_), dat_last_error());                      \
    } while (0)

/* Asserts a status and that the error message mentions `needle`. */
#define ck_assert_dat_err(expr, want, needle)                                           \
    do {                                                                                \
        dat_clear_error();                                                              \
        dat_status ck_s_ = (expr);                                                      \
        ck_assert_msg(ck_s_ == (want), "%s returned %s, expected %s (%s)", #expr,       \
                      dat_status_string(ck_s_), dat_status_string(want), dat_last_error()); \
        ck_assert_msg(strstr(dat_last_error(), (needle)) != NULL,                       \
                      "%s: message \"%s\" does not mention \"%s\"", #expr,              \
                      dat_last_error(), (needle));                                      \
    } while (0)

/* Runs a suite; exit status 0 when every test passed. */
static inline int dat_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* 1 if this libdat has CUDA and sees a GPU; the GPU tests skip otherwise. */
static inline int dat_test_have_gpu(void)
{
    int32_t count = 0;
    return dat_has_cuda() && dat_cuda_device_count(&count) == DAT_OK && count > 0;
}

/* 1 where the GPU is the CUDA emulation (kernels/emu; meson's gpu_emulation
 * sets DAT_TEST_EMULATED_GPU for the tests). */
static inline int dat_test_emulated_gpu(void)
{
    const char *emu = getenv("DAT_TEST_EMULATED_GPU");
    return emu && *emu && *emu != '0';
}

/* A float32 tensor's values on the host (caller frees); *n (may be NULL)
 * receives their count. */
static inline float *dat_test_read_floats(const dat_tensor *t, size_t *n)
{
    int64_t count = 0;
    ck_assert_dat_ok(dat_tensor_numel(t, &count));
    float *h = (float *)malloc((size_t)count * sizeof *h + 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_dat_ok(dat_tensor_read(t, h, (size_t)count * sizeof *h));
    if (n)
        *n = (size_t)count;
    return h;
}

/* ||got - ref|| / ||ref|| (the absolute norm where ||ref|| = 0). */
static inline double dat_test_rel_err(const float *ref, const float *got, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Exit status that tells meson (and scripts/test) a test was skipped. */
#define DAT_TEST_SKIP 77

#endif
