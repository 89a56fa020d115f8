/**
 * @file dat_capture.h
 * @brief Step graphs: a whole training step, as the host composes it, recorded
 *        once and replayed with one launch per step (CUDA graphs). (0.5.0)
 *
 * A host loop runs its step (attack, loss and backward pass, optimizer step)
 * once op by op, then records it between dat_capture_begin() and
 * dat_capture_end(), and from then on calls dat_step_graph_launch() for each
 * batch after writing the batch into the same input tensors. Recording runs
 * nothing on the device. A replay does what the recorded calls would do on
 * the data the tensors then hold, with the host's state advanced as they
 * would advance it: the optimizer's step (so its learning-rate schedule), the
 * attack's step (so its random starts), the batch norms' counters.
 *
 * What a step records must not read back to the host, so inside a capture:
 * - dat_model_loss_backward() takes a NULL @p loss;
 * - the checks that would read data back (inputs finite and inside the
 *   attack's range, labels inside [0, classes), a finite gradient before the
 *   optimizer's update) run on the device: a failing check sets a fault that
 *   the next dat_ctx_synchronize() returns (DAT_ERR_NUMERIC or
 *   DAT_ERR_INVALID_ARG, naming the check), an optimizer step whose
 *   gradient is not finite updates nothing (its step number is used up), and
 *   batch-norm running statistics that a step would leave NaN or Inf keep
 *   their values from before it;
 * - of the collectives, on a NCCL communicator of the same context, the
 *   exact all-reduce is recorded (dat_comm_allreduce(), so
 *   dat_comm_allreduce_grads() without a quantizer) and a dat_grad_sync's
 *   buckets during the backward pass, exact or quantized, without the ranks'
 *   agreement on the arguments, which reads back: every rank must record the
 *   same step. A quantized synchronizer draws anew at each replay (its step
 *   advances); an encode that meets NaN, Inf or an overflowing norm on any
 *   rank leaves NaN as the mean on every rank (so every optimizer skips the
 *   update), sets a fault (DAT_ERR_NUMERIC) on every rank and zeroes every
 *   rank's error-feedback residual, as a failed op-by-op call does;
 * - what cannot be recorded fails with DAT_ERR_STATE and a message naming it:
 *   an attack with restarts, an l2 random start or smoothing, the other
 *   collectives and host communicators (their ranks agree through the host;
 *   dat_comm_allreduce_quantized()), anything that reads back or allocates.
 *   dat_capture_end() then returns that failure.
 *
 * A replay reads the host's counters (steps, positions) afresh, but keeps the
 * configuration the calls had when recorded: a model's mode
 * (dat_model_set_mode()) and an optimizer's learning-rate scales
 * (dat_optim_set_lr_scale()) changed later are not seen; record again.
 *
 * Everything a graph refers to (tensors, model, attack, optimizer,
 * communicator) must outlive it, and keep its buffers: a graph holds device
 * pointers. Only the CUDA backend records graphs.
 */
#ifndef LIBDAT_DAT_CAPTURE_H
#define LIBDAT_DAT_CAPTURE_H

#include "dat_ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque recorded step. */
typedef struct dat_step_graph dat_step_graph;

/**
 * @brief Starts recording the calls that follow on @p ctx's objects.
 *
 * Run the step once op by op first: recording cannot grow the workspace,
 * allocate scratch or choose convolution algorithms.
 * @param ctx  a CUDA context not already recording.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_UNSUPPORTED on a
 *         backend without graphs (the CPU) or with the op profile on
 *         (DAT_PROFILE_OPS); DAT_ERR_STATE if @p ctx is already recording;
 *         DAT_ERR_CUDA.
 */
DAT_API dat_status dat_capture_begin(dat_ctx *ctx);

/**
 * @brief Ends the recording and makes it a graph.
 * @param ctx  the recording context.
 * @param[out] out  receives the graph, freed with dat_step_graph_destroy();
 *                  NULL on failure.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_STATE if @p ctx is
 *         not recording, or with the message of the first recorded call that
 *         failed (the recording ends either way and the host's state is as
 *         before dat_capture_begin()); DAT_ERR_CUDA.
 */
DAT_API dat_status dat_capture_end(dat_ctx *ctx, dat_step_graph **out);

/**
 * @brief Queues one replay of the recorded step and advances the host's
 *        state (optimizer step, attack step, batch-norm counters) by one step.
 *
 * Does not wait for the device; faults of device-side checks come back from
 * dat_ctx_synchronize().
 * @param graph  the graph.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_STATE, running
 *         nothing, if the context's workspace or a buffer that libdat grows
 *         (a model's, an attack's or a quantizer's: a larger batch passed
 *         through them, say) was reallocated since the recording (record the
 *         step again); DAT_ERR_CUDA.
 */
DAT_API dat_status dat_step_graph_launch(dat_step_graph *graph);

/**
 * @brief Frees a graph.
 * @param graph  the graph, or NULL (a no-op). Waits for the replays still
 *               queued first.
 */
DAT_API void dat_step_graph_destroy(dat_step_graph *graph);

#ifdef __cplusplus
}
#endif

#endif
