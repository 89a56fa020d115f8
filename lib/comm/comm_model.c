/* Collectives on a model's flat buffers: the gradient average of each step and
 * the start-up broadcast of parameters and BN statistics. */
#include "../core/error.h"
#include "../model/model.h"
#include "libdat/dat_comm.h"

dat_status dat_comm_allreduce_grads(dat_comm *comm, dat_model *model, dat_quantizer *q,
                                    dat_quant_mode mode, uint64_t step)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(model);
    if (!q)
        return dat_comm_allreduce(comm, model->grads, DAT_REDUCE_MEAN);
    return dat_comm_allreduce_quantized(comm, model->grads, q, mode, step);
}

dat_status dat_comm_broadcast_model(dat_comm *comm, dat_model *model, int32_t root)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(model);
    DAT_TRY(dat_comm_broadcast(comm, model->params, root));
    /* Every rank agrees on whether there are buffers: same model, same layout. */
    return model->buffers ? dat_comm_broadcast(comm, model->buffers, root) : DAT_OK;
}
