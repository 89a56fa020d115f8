/* CUDA graphs of the context's stream (lib/core/backend.h's capture_begin,
 * capture_end, graph_launch, graph_destroy). A graph remembers how many times
 * the workspace had moved when it was captured: kernels in it hold workspace
 * pointers, so a launch after a move is refused (DAT_ERR_STATE) rather than
 * run against freed memory. */
#include "cuda_ops.h"

struct dat_cuda_graph {
    cudaGraphExec_t exec;
    uint64_t workspace_moves;
};

dat_status dat_cuda_capture_begin(dat_ctx *ctx)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    /* Thread-local: another thread's unrelated CUDA calls cannot spoil it. */
    DAT_CUDA_TRY(cudaStreamBeginCapture(dat_cuda(ctx)->stream, cudaStreamCaptureModeThreadLocal));
    dat_cuda(ctx)->capturing = 1;
    return DAT_OK;
}

dat_status dat_cuda_capture_end(dat_ctx *ctx, void **graph)
{
    *graph = NULL;
    dat_cuda_state *st = dat_cuda(ctx);
    st->capturing = 0;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(st->stream, &g);
    if (dat_cuda_release_deferred(st) > 0) {
        if (g)
            cudaGraphDestroy(g);
        return dat_error(DAT_ERR_STATE, __func__,
                         "device memory was freed during the capture (a destroy call while "
                         "recording), which the graph might use: freed now, nothing recorded");
    }
    if (e != cudaSuccess) {
        if (g)
            cudaGraphDestroy(g);
        return dat_cuda_error(e, __func__, "cudaStreamEndCapture");
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess)
        return dat_cuda_error(e, __func__, "cudaGraphInstantiate");
    dat_cuda_graph *h = (dat_cuda_graph *)malloc(sizeof *h);
    if (!h) {
        cudaGraphExecDestroy(exec);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a graph handle");
    }
    h->exec = exec;
    h->workspace_moves = st->workspace_moves;
    *graph = h;
    return DAT_OK;
}

dat_status dat_cuda_graph_launch(dat_ctx *ctx, void *graph)
{
    dat_cuda_graph *h = (dat_cuda_graph *)graph;
    dat_cuda_state *st = dat_cuda(ctx);
    if (h->workspace_moves != st->workspace_moves)
        return dat_error(DAT_ERR_STATE, __func__,
                         "the graph refers to a workspace that has since been reallocated");
    DAT_TRY(dat_cuda_use_device(ctx));
    DAT_CUDA_TRY(cudaGraphLaunch(h->exec, st->stream));
    return DAT_OK;
}

void dat_cuda_graph_destroy(dat_ctx *ctx, void *graph)
{
    (void)ctx;
    dat_cuda_graph *h = (dat_cuda_graph *)graph;
    if (!h)
        return;
    cudaGraphExecDestroy(h->exec);
    free(h);
}
