/*
 * A rank dies (SIGKILL) before a collective: the survivors must get
 * DAT_ERR_TIMEOUT within the communicator's timeout (2 s here, plus slack),
 * and DAT_ERR_STATE afterwards. Each survivor writes its verdict to
 * DIR/rank<r> and leaves at once (MPI_Finalize would wait for the dead rank);
 * run_kill.sh collects the verdicts and stops mpirun.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_check.h"

#define TIMEOUT_S 2.0

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void verdict(const char *dir, int pass, const char *line)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/.rank%d", dir, g_rank);
    snprintf(path, sizeof path, "%s/rank%d", dir, g_rank);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "rank %d: %s: %s\n", g_rank, pass ? "PASS" : "FAIL", line);
        fclose(f);
        rename(tmp, path);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *dir = argc > 1 ? argv[1] : ".";
    dat_ctx *ctx = NULL;
    dat_comm *comm = NULL;
    dat_comm_options o;
    dat_comm_options_init(&o);
    o.timeout_s = TIMEOUT_S;
    char line[2048];
    if (dat_ctx_create(&ctx, NULL) != DAT_OK ||
        dat_comm_create_mpi(&comm, ctx, MPI_COMM_WORLD, &o) != DAT_OK) {
        snprintf(line, sizeof line, "setup failed: %s", dat_last_error());
        verdict(dir, 0, line);
        _exit(1);
    }
    int64_t n = 1000;
    dat_tensor *t = NULL;
    dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_fill(t, 1.0);
    dat_status s = dat_comm_allreduce(comm, t, DAT_REDUCE_SUM);
    if (s != DAT_OK) {
        snprintf(line, sizeof line, "the first all-reduce failed: %s", dat_last_error());
        verdict(dir, 0, line);
        _exit(1);
    }
    if (g_rank == g_size - 1)
        raise(SIGKILL);
    double t0 = now();
    s = dat_comm_allreduce(comm, t, DAT_REDUCE_SUM);
    double waited = now() - t0;
    int pass = s == DAT_ERR_TIMEOUT && waited >= TIMEOUT_S * 0.99 && waited < TIMEOUT_S + 3.0;
    snprintf(line, sizeof line, "%s after %.2f s (timeout %.1f s): %s", dat_status_string(s),
             waited, TIMEOUT_S, dat_last_error());
    dat_status again = dat_comm_allreduce(comm, t, DAT_REDUCE_SUM);
    if (again != DAT_ERR_STATE) {
        pass = 0;
        strncat(line, "; the next call did not return DAT_ERR_STATE",
                sizeof line - strlen(line) - 1);
    }
    verdict(dir, pass, line);
    fflush(NULL);
    _exit(pass ? 0 : 1);
}
