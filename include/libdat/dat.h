/**
 * @file dat.h
 * @brief libdat: distributed adversarial training of deep networks.
 *
 * The umbrella header: include this one. It includes no CUDA, MPI or NCCL
 * header; the MPI entry points have their own header, dat_mpi.h.
 */
#ifndef LIBDAT_DAT_H
#define LIBDAT_DAT_H

#include "dat_common.h"
#include "dat_ctx.h"
#include "dat_tensor.h"
#include "dat_segment.h"
#include "dat_model.h"
#include "dat_attack.h"
#include "dat_eval.h"
#include "dat_quant.h"
#include "dat_comm.h"
#include "dat_optim.h"
#include "dat_data.h"
#include "dat_checkpoint.h"
#include "dat_capture.h"

#endif
