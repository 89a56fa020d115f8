/* Checks for the MPI test programs (run under mpirun, so no Check fork
 * runner): every failure prints the rank, the place and the values. */
#ifndef LIBDAT_TESTS_MPI_CHECK_H
#define LIBDAT_TESTS_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "libdat/dat_mpi.h"

static int g_rank, g_size;
static int g_fails __attribute__((unused));

#define EXPECT(cond, ...)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "rank %d: FAIL %s:%d: ", g_rank, __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            g_fails++;                                                                    \
        }                                                                                 \
    } while (0)

#define EXPECT_OK(expr)                                                                   \
    do {                                                                                  \
        dat_status e_s_ = (expr);                                                         \
        EXPECT(e_s_ == DAT_OK, "%s returned %s: %s", #expr, dat_status_string(e_s_),      \
               dat_last_error());                                                         \
    } while (0)

#define EXPECT_ERR(expr, want, needle)                                                    \
    do {                                                                                  \
        dat_clear_error();                                                                \
        dat_status e_s_ = (expr);                                                         \
        EXPECT(e_s_ == (want) && strstr(dat_last_error(), (needle)) != NULL,              \
               "%s returned %s (%s), expected %s mentioning \"%s\"", #expr,               \
               dat_status_string(e_s_), dat_last_error(), dat_status_string(want), (needle)); \
    } while (0)

/* expr fails on the last rank only, with `want` mentioning needle there; the
 * other ranks learn it through the header agreement: DAT_ERR_COMM naming it. */
#define EXPECT_LAST_RANK_FAILS(expr, want, needle)                                        \
    do {                                                                                  \
        char who_[96];                                                                    \
        snprintf(who_, sizeof who_, "rank %d failed its part with %s", g_size - 1,        \
                 dat_status_string(want));                                                \
        if (g_rank == g_size - 1)                                                         \
            EXPECT_ERR(expr, want, needle);                                               \
        else                                                                              \
            EXPECT_ERR(expr, DAT_ERR_COMM, who_);                                         \
    } while (0)

#endif
