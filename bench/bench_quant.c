/*
 * Quantize + pack and unpack + accumulate throughput against memcpy, on the
 * same buffer, same run, same threads. GB/s count the float32 bytes of the
 * input (encode) or of the output (decode). Last line:
 *   quant ratio=R encode_gbs=... decode_gbs=... memcpy_gbs=... threads=T n=N bits=B
 * where R = min(encode, decode) / memcpy.
 *
 * With DAT_BENCH_DEVICE=cuda (bench_util.h) the quantizer and the tensors
 * live on the GPU: the round trip encode + decode (the quantized all-reduce of
 * a one-rank communicator, codes never leaving the device) against a device
 * copy of the same tensor; last line:
 *   quant-device ratio=R roundtrip_gbs=... memcpy_gbs=... n=N bits=B
 *
 * Usage: bench_quant [n] [bits] [threads] [reps]
 */
#include "bench_util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* memcpy split over the threads, as the quantizer splits its buckets. */
static void par_memcpy(float *dst, const float *src, size_t n, int threads)
{
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t lo = n * (size_t)t / (size_t)nt, hi = n * (size_t)(t + 1) / (size_t)nt;
        memcpy(dst + lo, src + lo, (hi - lo) * sizeof *dst);
    }
}

/* Encode + decode on the device (a one-rank quantized all-reduce) against a
 * device copy, both synchronized; best of reps. */
static int device_round_trip(dat_ctx *ctx, dat_quantizer *q, dat_tensor *x, dat_tensor *y,
                             int64_t n, int bits, int reps)
{
    dat_comm *self = NULL;
    TRY(dat_comm_create_self(&self, ctx));
    double best_cpy = 1e30, best_rt = 1e30;
    for (int r = 0; r < reps; ++r) {
        TRY(dat_ctx_synchronize(ctx));
        double t0 = now();
        TRY(dat_tensor_copy(y, x));
        TRY(dat_ctx_synchronize(ctx));
        double t1 = now();
        TRY(dat_comm_allreduce_quantized(self, y, q, DAT_QUANT_ONE_SIDED, (uint64_t)r));
        TRY(dat_ctx_synchronize(ctx));
        double t2 = now();
        best_cpy = t1 - t0 < best_cpy ? t1 - t0 : best_cpy;
        best_rt = t2 - t1 < best_rt ? t2 - t1 : best_rt;
    }
    double gb = 4.0 * (double)n / 1e9, cpy = gb / best_cpy, rt = gb / best_rt;
    printf("device copy %.1f GB/s, encode + decode %.1f GB/s (%.3f ms vs %.3f ms)\n", cpy, rt,
           1e3 * best_rt, 1e3 * best_cpy);
    printf("quant-device ratio=%.3f roundtrip_gbs=%.1f memcpy_gbs=%.1f n=%lld bits=%d\n",
           rt / cpy, rt, cpy, (long long)n, bits);
    dat_comm_destroy(self);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 11000000;
    int bits = argc > 2 ? atoi(argv[2]) : 8;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int reps = argc > 4 ? atoi(argv[4]) : 10;
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = threads;
    bench_device(&co);
    dat_ctx *ctx = NULL;
    TRY(dat_ctx_create(&ctx, &co));
    dat_quantizer_options qo;
    dat_quantizer_options_init(&qo);
    qo.bits = bits;
    dat_quantizer *q = NULL;
    TRY(dat_quantizer_create(&q, ctx, &qo));
    dat_tensor *x = NULL, *y = NULL;
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 1, &n));
    TRY(dat_tensor_create(&y, ctx, DAT_FLOAT32, 1, &n));
    TRY(dat_tensor_fill_normal(x, 0.0f, 1e-3f, 1, 0));
    if (co.device != DAT_DEVICE_CPU)
        return device_round_trip(ctx, q, x, y, n, bits, reps);
    size_t bytes = 0;
    TRY(dat_quantizer_encoded_size(q, n, &bytes));
    void *codes = aligned_alloc(64, (bytes + 63) / 64 * 64);
    float *src = NULL, *dst = NULL;
    TRY(dat_tensor_host_data(x, (void **)&src));
    TRY(dat_tensor_host_data(y, (void **)&dst));
    memset(codes, 0, bytes);

    double best_cpy = 1e30, best_enc = 1e30, best_dec = 1e30;
    for (int r = 0; r < reps; ++r) {
        double t0 = now();
        par_memcpy(dst, src, (size_t)n, threads);
        double t1 = now();
        TRY(dat_quantizer_encode(q, x, (uint64_t)r, codes, bytes));
        double t2 = now();
        TRY(dat_quantizer_decode(q, codes, bytes, y, 1));
        double t3 = now();
        best_cpy = t1 - t0 < best_cpy ? t1 - t0 : best_cpy;
        best_enc = t2 - t1 < best_enc ? t2 - t1 : best_enc;
        best_dec = t3 - t2 < best_dec ? t3 - t2 : best_dec;
    }
    double gb = 4.0 * (double)n / 1e9;
    double cpy = gb / best_cpy, enc = gb / best_enc, dec = gb / best_dec;
    double ratio = (enc < dec ? enc : dec) / cpy;
    printf("n=%lld bits=%d threads=%d encoded=%zu bytes (%.2f bits/element)\n", (long long)n,
           bits, threads, bytes, 8.0 * (double)bytes / (double)n);
    printf("memcpy %.2f GB/s, quantize+pack %.2f GB/s (%.2f), unpack+accumulate %.2f GB/s (%.2f)\n",
           cpy, enc, enc / cpy, dec, dec / cpy);
    printf("quant ratio=%.3f encode_gbs=%.2f decode_gbs=%.2f memcpy_gbs=%.2f threads=%d "
           "n=%lld bits=%d\n", ratio, enc, dec, cpy, threads, (long long)n, bits);
    free(codes);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
    return 0;
}
