/**
 * @file dat_mpi.h
 * @brief The MPI communicator, and helpers that move an NCCL unique id over MPI.
 *
 * Not included by dat.h, because it includes mpi.h: include it yourself in
 * MPI programs. Available when libdat was built with MPI (meson option
 * `mpi`); the program must call MPI_Init (any thread level, libdat calls MPI
 * only from the thread that calls it) before, and MPI_Finalize after
 * destroying the communicators.
 *
 * The MPI communicator moves host buffers; tensors of a CUDA context are
 * staged through host memory. Its collectives are built from nonblocking
 * point-to-point messages that it polls (MPI_Testall) against a deadline, so
 * a peer that died or stopped calling collectives gives DAT_ERR_TIMEOUT after
 * dat_comm_options::timeout_s (default 60 s) instead of a hang; the
 * communicator it works on has MPI_ERRORS_RETURN, so MPI errors come back as
 * DAT_ERR_COMM with MPI's message.
 *
 * All-reduce: reduce-scatter (rank j sums shard j of every rank, in rank
 * order) then all-gather, so the result is the serial sum x_0 + x_1 + ... in
 * that order, bit-identical on every rank.
 */
#ifndef LIBDAT_DAT_MPI_H
#define LIBDAT_DAT_MPI_H

#include <mpi.h>

#include "dat.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Creates a communicator over the ranks of @p comm (collective over them).
 *
 * @p comm is duplicated (MPI_Comm_idup, itself bounded by the timeout), so
 * libdat's messages never mix with the host's; the duplicate gets
 * MPI_ERRORS_RETURN.
 * @param[out] out  receives the communicator, owned by the caller and freed
 *                  with dat_comm_destroy() before @p ctx and before
 *                  MPI_Finalize; NULL on failure.
 * @param ctx  the context whose threads quantize (tensors of any context can
 *             be reduced).
 * @param comm  the MPI communicator (e.g. MPI_COMM_WORLD); the host keeps
 *              owning it.
 * @param opts  options (the timeout), or NULL for the defaults.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL arguments, MPI_COMM_NULL or bad
 *         options; DAT_ERR_STATE if MPI is not initialized; DAT_ERR_COMM;
 *         DAT_ERR_TIMEOUT; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_comm_create_mpi(dat_comm **out, dat_ctx *ctx, MPI_Comm comm,
                                       const dat_comm_options *opts);

/**
 * @brief Broadcasts an NCCL unique id from @p root to every rank of @p comm
 *        (collective; call dat_comm_unique_id() on the root first).
 * @param[in,out] id  the root's id on the root; receives it on the others.
 * @param root  the sending rank of @p comm.
 * @param comm  the MPI communicator.
 * @param timeout_s  bound on the wait, > 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG; DAT_ERR_COMM; DAT_ERR_TIMEOUT.
 */
DAT_API dat_status dat_comm_unique_id_broadcast_mpi(dat_comm_id *id, int32_t root,
                                                    MPI_Comm comm, double timeout_s);

/**
 * @brief Creates an NCCL communicator over the ranks of @p comm: rank 0
 *        makes the unique id, MPI moves it, every rank joins with its MPI
 *        rank (collective over @p comm).
 * @param[out] out  receives the communicator, owned by the caller and freed
 *                  with dat_comm_destroy() before @p ctx; NULL on failure.
 * @param ctx  a CUDA context: the GPU this rank uses.
 * @param comm  the MPI communicator whose ranks join.
 * @param opts  options (the timeout), or NULL for the defaults.
 * @return DAT_OK; otherwise as dat_comm_create_nccl() and dat_comm_unique_id_broadcast_mpi().
 */
DAT_API dat_status dat_comm_create_nccl_mpi(dat_comm **out, dat_ctx *ctx, MPI_Comm comm,
                                            const dat_comm_options *opts);

#ifdef __cplusplus
}
#endif

#endif
