/*
 * The CPU backend inside someone else's threads: contexts of different thread
 * counts used side by side from host threads, a context used inside the host's
 * own OpenMP parallel region, and the host's OpenMP setting, which a context
 * must leave as it found it, and a child of fork(). Each result is compared with
 * the same work done alone by the same context.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_util.h"
#include "core/backend.h"
#include "core/ctx.h"
#include "cpu/cpu.h"
#include "gradcheck.h"

static dat_ctx *make_ctx(int threads)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = threads;
    dat_ctx *c = NULL;
    ck_assert_dat_ok(dat_ctx_create(&c, &o));
    return c;
}

/* n floats of gradcheck.h's deterministic sequence. */
static float *filled(size_t n, unsigned seed)
{
    double *d = malloc(n * sizeof *d);
    float *v = malloc(n * sizeof *v);
    ck_assert(d && v);
    dat_gc_fill(d, n, seed);
    dat_gc_to_float(d, v, n);
    free(d);
    return v;
}

/* ---- GEMMs of contexts with different thread counts, side by side ---- */

/* A convolution's product (64 channels of 56x56, 3x3 taps): threaded by OpenBLAS. */
enum { M = 128, N = 3136, K = 288, ROUNDS = 100 };

typedef struct gemm_job {
    dat_ctx *ctx;
    const float *a, *b;
    const float *want; /* the context's own result, computed alone */
    int wrong;
} gemm_job;

static void *gemm_rounds(void *arg)
{
    gemm_job *j = arg;
    float *c = malloc((size_t)M * N * sizeof *c);
    for (int r = 0; r < ROUNDS && c; ++r) {
        dat_cpu_gemm(j->ctx, 0, 0, M, N, K, 1.0f, j->a, K, j->b, N, 0.0f, c, N);
        j->wrong += memcmp(c, j->want, (size_t)M * N * sizeof *c) != 0;
    }
    free(c);
    return NULL;
}

START_TEST(test_gemm_contexts_side_by_side)
{
    size_t n = (size_t)M * N;
    float *a = filled((size_t)M * K, 1), *b = filled((size_t)K * N, 2);
    gemm_job jobs[2] = {{make_ctx(1), a, b, NULL, 0}, {make_ctx(2), a, b, NULL, 0}};
    for (int k = 0; k < 2; ++k) {
        float *want = malloc(n * sizeof *want);
        ck_assert_ptr_nonnull(want);
        dat_cpu_gemm(jobs[k].ctx, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, want, N);
        jobs[k].want = want;
    }
    pthread_t t[2];
    for (int k = 0; k < 2; ++k)
        ck_assert_int_eq(pthread_create(&t[k], NULL, gemm_rounds, &jobs[k]), 0);
    for (int k = 0; k < 2; ++k)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; ++k) {
        ck_assert_msg(jobs[k].wrong == 0, "%d thread(s): %d of %d products differ from the "
                      "context's own", k + 1, jobs[k].wrong, ROUNDS);
        free((void *)jobs[k].want);
        dat_ctx_destroy(jobs[k].ctx);
    }
    free(a);
    free(b);
}
END_TEST

/* ---- the host's OpenMP setting ---- */

START_TEST(test_host_openmp_setting_kept)
{
    omp_set_num_threads(3);
    dat_ctx *one = make_ctx(1), *two = make_ctx(2);
    ck_assert_int_eq(omp_get_max_threads(), 3);
    float a[4] = {1, 2, 3, 4}, c[4];
    ck_assert_dat_ok(dat_cpu_gemm(one, 0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2));
    ck_assert_int_eq(omp_get_max_threads(), 3);
    ck_assert_dat_ok(dat_cpu_gemm(two, 0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2));
    ck_assert_int_eq(omp_get_max_threads(), 3);
    dat_ctx_destroy(one);
    dat_ctx_destroy(two);
    ck_assert_int_eq(omp_get_max_threads(), 3);
    omp_set_num_threads(2);
}
END_TEST

/* ---- a context called inside the host's parallel region ---- */

/* A convolution big enough for the per-group path with 2 threads. */
static dat_conv_desc conv_desc(void)
{
    dat_conv_desc d = {.n = 8, .c_in = 16, .h_in = 16, .w_in = 16, .c_out = 16, .k_h = 3,
                       .k_w = 3, .stride = 1, .pad = 1};
    ck_assert_dat_ok(dat_conv_desc_init("test", &d));
    return d;
}

START_TEST(test_conv_filter_grad_inside_host_region)
{
    dat_conv_desc d = conv_desc();
    size_t nx = (size_t)d.n * d.c_in * d.h_in * d.w_in;
    size_t ny = (size_t)d.n * d.c_out * d.h_out * d.w_out;
    size_t nw = (size_t)d.c_out * d.c_in * d.k_h * d.k_w;
    float *x = filled(nx, 3), *dy = filled(ny, 4);
    dat_ctx *c[2] = {make_ctx(2), make_ctx(2)};
    float *want = malloc(nw * sizeof *want), *got[2], dbw[16], db[2][16];
    ck_assert_dat_ok(c[0]->be->conv2d_bwd_filter(c[0], &d, x, dy, want, dbw, 0.0f));
    for (int k = 0; k < 2; ++k) { /* the second context's workspace holds other partials */
        got[k] = filled(nw, 5 + (unsigned)k);
        ck_assert_dat_ok(c[1]->be->conv2d_bwd_filter(c[1], &d, dy, dy, got[k], NULL, 0.0f));
    }
    dat_status st[2] = {DAT_OK, DAT_OK};
#pragma omp parallel num_threads(2)
    {
        int k = omp_get_thread_num();
        st[k] = c[k]->be->conv2d_bwd_filter(c[k], &d, x, dy, got[k], db[k], 0.0f);
    }
    for (int k = 0; k < 2; ++k) {
        ck_assert_dat_ok(st[k]);
        double err = 0, ref = 0, err_b = 0, ref_b = 0;
        for (size_t i = 0; i < nw; ++i) {
            err = fmax(err, fabs((double)got[k][i] - want[i]));
            ref = fmax(ref, fabs((double)want[i]));
        }
        for (int i = 0; i < d.c_out; ++i) {
            err_b = fmax(err_b, fabs((double)db[k][i] - dbw[i]));
            ref_b = fmax(ref_b, fabs((double)dbw[i]));
        }
        ck_assert_msg(err <= 1e-5 * ref && err_b <= 1e-5 * ref_b,
                      "host thread %d: dW differs by %g (largest %g), dbias by %g (largest %g)",
                      k, err, ref, err_b, ref_b);
        free(got[k]);
        dat_ctx_destroy(c[k]);
    }
    free(want);
    free(x);
    free(dy);
}
END_TEST

/* ---- fork() ---- */

/* OpenMP work of a context: a parallel fill and a threaded product. */
static int parallel_work(dat_ctx *c)
{
    int64_t n = 1 << 20;
    dat_tensor *t = NULL;
    if (dat_tensor_create(&t, c, DAT_FLOAT32, 1, &n) != DAT_OK ||
        dat_tensor_fill_normal(t, 0.0f, 1.0f, 0, 0) != DAT_OK)
        return 1;
    float *a = filled((size_t)M * K, 1), *b = filled((size_t)K * N, 2);
    float *out = malloc((size_t)M * N * sizeof *out);
    int bad = !out || dat_cpu_gemm(c, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, out, N) != DAT_OK;
    free(a), free(b), free(out);
    dat_tensor_destroy(t);
    return bad;
}

/* A child of fork() keeps using its parent's 2-thread context: libgomp's pool
 * is gone there, so the child runs on one thread instead of hanging. */
START_TEST(test_fork_child_runs)
{
    dat_ctx *c = make_ctx(2);
    ck_assert_int_eq(parallel_work(c), 0); /* the parent's pool is up */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(parallel_work(c));
    int status = 0, waited = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && waited < 600) {
        usleep(100000);
        ++waited;
    }
    if (done == 0) { /* a minute: hung */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("the child of fork() hung in its parent's context");
    }
    ck_assert_int_eq(done, pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the child %s %d", WIFEXITED(status) ? "exited with" : "was killed by signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    ck_assert_int_eq(parallel_work(c), 0); /* and the parent goes on */
    dat_ctx_destroy(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cpu_threads");
    TCase *tc = tcase_create("cpu_threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gemm_contexts_side_by_side);
    tcase_add_test(tc, test_host_openmp_setting_kept);
    tcase_add_test(tc, test_conv_filter_grad_inside_host_region);
    tcase_add_test(tc, test_fork_child_runs);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
