/**
 * @file dat_checkpoint.h
 * @brief Training checkpoints: the model's state_dict, the optimizer's state and
 *        the position of the run, in one safetensors file written atomically
 *        (temporary file, fsync, rename), so a crash leaves the previous
 *        checkpoint loadable and resuming continues bit for bit.
 *
 * Tensors: the model's (PyTorch names), "optim.state" (uint8, the bytes of
 * dat_optim_state_save) and "train.position" (int64 [epoch, step,
 * attack_step]); metadata "config" holds the host's configuration (any text,
 * JSON by convention).
 */
#ifndef LIBDAT_DAT_CHECKPOINT_H
#define LIBDAT_DAT_CHECKPOINT_H

#include "dat_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Where a run stands; set size to sizeof(dat_checkpoint_info). */
typedef struct dat_checkpoint_info {
    uint32_t size;        /**< sizeof(dat_checkpoint_info), set by the caller */
    int64_t epoch;        /**< epochs completed, >= 0 */
    int64_t step;         /**< optimizer steps completed, >= 0 */
    uint64_t attack_step; /**< the attack's step counter (its Philox position) */
} dat_checkpoint_info;

/**
 * @brief Writes a checkpoint (temporary file, fsync, rename).
 *
 * A quantizer's error-feedback residual is not part of it: a run resumed
 * from it starts the residual at zero (its continuation is then not the
 * uninterrupted run's bits).
 * @param path  the file to write.
 * @param model  the model whose state_dict is stored.
 * @param optim  its optimizer, or NULL (then no optimizer state is stored).
 * @param info  the position to store; info->size set by the caller.
 * @param config  text stored as metadata "config" (may be NULL), at most
 *                65535 bytes.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL required pointers, a wrong
 *         info->size, a negative epoch or step, or a longer config;
 *         DAT_ERR_IO naming the path and the system's reason (as
 *         dat_model_save()); DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_checkpoint_save(const char *path, dat_model *model, dat_optim *optim,
                                       const dat_checkpoint_info *info, const char *config);

/**
 * @brief Restores a checkpoint into @p model (and @p optim unless NULL), all or
 *        nothing: the optimizer state is checked against @p optim first, then
 *        the model loads (dat_model_load), then the optimizer state.
 * @param path  the file to read.
 * @param model  the model to restore (of the same architecture).
 * @param optim  the optimizer to restore (same kind and parameter count), or
 *               NULL to leave optimizer state aside.
 * @param[out] info  the stored position (its size set by the caller).
 * @param[out] config  receives the stored configuration, NUL-terminated and
 *                     truncated to @p config_size (may be NULL).
 * @param config_size  bytes at @p config.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL required pointers; DAT_ERR_IO;
 *         DAT_ERR_FORMAT for a file of another model (naming the first
 *         mismatched tensor), a missing or negative position, or an
 *         optimizer state missing or of another kind or size than @p optim's.
 */
DAT_API dat_status dat_checkpoint_load(const char *path, dat_model *model, dat_optim *optim,
                                       dat_checkpoint_info *info, char *config,
                                       size_t config_size);

#ifdef __cplusplus
}
#endif

#endif
