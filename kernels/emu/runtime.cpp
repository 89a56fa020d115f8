/*
 * The emulated CUDA runtime: device memory (host memory, poisoned when
 * allocated, bounds-checked when copied), streams, events and graphs.
 *
 * Work runs at once, in issue order, except on a stream being captured, whose
 * work is recorded; a stream that waits on an event recorded in a captured
 * stream joins its capture, as in CUDA. What CUDA refuses during a capture
 * (host synchronization, allocation) fails here too and spoils the capture,
 * so libdat's fallbacks for it run in tests.
 *
 * One lock serializes the whole emulator: libdat's contexts may be used from
 * several threads, one at a time each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "emu.h"

typedef std::vector<std::function<void()>> op_list;

struct CUgraph_st {
    op_list ops;
    bool spoiled = false;
};

struct CUgraphExec_st {
    std::shared_ptr<const op_list> ops;
};

struct CUstream_st {
    unsigned flags = 0;
    CUgraph_st *capture = nullptr; /* the graph this stream records into */
};

struct CUevent_st {
    CUgraph_st *capture = nullptr; /* recorded in a capture: waiters join it */
};

namespace {

std::recursive_mutex big_lock;
typedef std::lock_guard<std::recursive_mutex> guard;

CUstream_st legacy_stream; /* the NULL stream */
std::vector<CUstream_st *> capturing;
thread_local cudaError_t last_error = cudaSuccess;

/* Device allocations: start -> size, for cudaFree and the copies' checks. */
std::map<const char *, size_t> allocations;
size_t allocated;

CUstream_st *stream_of(cudaStream_t s) { return s ? s : &legacy_stream; }

void stop_capture(CUgraph_st *g)
{
    for (size_t i = 0; i < capturing.size();)
        if (capturing[i]->capture == g) {
            capturing[i]->capture = nullptr;
            capturing.erase(capturing.begin() + (long)i);
        } else {
            ++i;
        }
}

/* A call CUDA refuses while this thread captures: spoils every capture. */
cudaError_t refuse_if_capturing()
{
    if (capturing.empty())
        return cudaSuccess;
    for (CUstream_st *s : capturing)
        s->capture->spoiled = true;
    return dat_emu::fail(cudaErrorStreamCaptureUnsupported);
}

/* [p, p + n) inside one device allocation. */
bool is_device(const void *p, size_t n)
{
    const char *c = (const char *)p;
    auto it = allocations.upper_bound(c);
    if (it == allocations.begin())
        return false;
    --it;
    return c >= it->first && c + n <= it->first + it->second;
}

/* The device side(s) of a copy must lie inside allocations: an overrun is a
 * bug in the caller, which a GPU might not report. */
cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        dst_dev = is_device(dst, 1);
        src_dev = is_device(src, 1);
    }
    if (n == 0 || ((!dst_dev || is_device(dst, n)) && (!src_dev || is_device(src, n))))
        return cudaSuccess;
    fprintf(stderr, "CUDA emulation: a copy of %zu bytes from %p to %p (kind %d) leaves "
            "device memory\n", n, src, dst, (int)kind);
    return dat_emu::fail(cudaErrorInvalidValue);
}

/* The device's size: DAT_EMU_MEMORY_LIMIT bytes (read at each allocation, so a
 * test can fill the device and free it again), else half the host's memory, so
 * that a request no GPU could meet fails instead of the host's OOM killer
 * ending the process when the poison is written. */
size_t memory_limit()
{
    const char *v = getenv("DAT_EMU_MEMORY_LIMIT");
    if (v && *v)
        return (size_t)strtoull(v, NULL, 10);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages / 2 * (size_t)page : (size_t)1 << 34;
}

} // namespace

namespace dat_emu {

cudaError_t fail(cudaError_t err)
{
    last_error = err;
    return err;
}

cudaError_t enqueue(cudaStream_t s, std::function<void()> op, const site &from)
{
    guard g(big_lock);
    op = counted(std::move(op), from);
    CUstream_st *st = stream_of(s);
    if (st->capture)
        st->capture->ops.push_back(std::move(op));
    else
        op();
    return cudaSuccess;
}

cudaError_t host_sync(cudaStream_t s)
{
    guard g(big_lock);
    if (!s)
        return refuse_if_capturing();
    if (!s->capture)
        return cudaSuccess;
    s->capture->spoiled = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

} // namespace dat_emu

using dat_emu::fail;

const char *cudaGetErrorName(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(err);
    }
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

/* DAT_EMU_DEVICES=0 plays a machine without a GPU. */
cudaError_t cudaGetDeviceCount(int *count)
{
    const char *v = getenv("DAT_EMU_DEVICES");
    *count = v && *v ? atoi(v) : 1;
    return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    int n = 0;
    cudaGetDeviceCount(&n);
    return device >= 0 && device < n ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return dat_emu::host_sync(NULL); }

/* New memory reads as NaN (0xff bytes): a kernel that reads what nobody wrote
 * shows in the results instead of passing on zeros. Allocations past
 * memory_limit() fail, as on a full GPU. */
cudaError_t cudaMalloc(void **ptr, size_t bytes)
{
    guard g(big_lock);
    *ptr = NULL;
    cudaError_t e = refuse_if_capturing();
    if (e != cudaSuccess)
        return e;
    size_t limit = memory_limit();
    size_t n = bytes ? (bytes + 255) & ~(size_t)255 : 256;
    if (bytes > limit || n > limit || allocated > limit - n)
        return fail(cudaErrorMemoryAllocation);
    void *p = aligned_alloc(256, n);
    if (!p)
        return fail(cudaErrorMemoryAllocation);
    memset(p, 0xff, n);
    allocations[(const char *)p] = bytes;
    allocated += n;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    guard g(big_lock);
    if (!ptr)
        return cudaSuccess;
    cudaError_t e = refuse_if_capturing(); /* cudaFree synchronizes the device */
    if (e != cudaSuccess)
        return e;
    auto it = allocations.find((const char *)ptr);
    if (it == allocations.end())
        return fail(cudaErrorInvalidValue);
    allocated -= it->second ? (it->second + 255) & ~(size_t)255 : 256;
    allocations.erase(it);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    guard g(big_lock);
    cudaError_t e = dat_emu::host_sync(NULL);
    if (e == cudaSuccess)
        e = check_copy(dst, src, bytes, kind);
    if (e == cudaSuccess && bytes)
        memmove(dst, src, bytes);
    return e;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    guard g(big_lock);
    cudaError_t e = check_copy(dst, src, bytes, kind);
    if (e != cudaSuccess || bytes == 0)
        return e;
    return dat_emu::enqueue(stream, [=]() { memmove(dst, src, bytes); },
                            {"CUDA", 0, "cudaMemcpyAsync", ""});
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream)
{
    guard g(big_lock);
    if (bytes && !is_device(dst, bytes)) {
        fprintf(stderr, "CUDA emulation: a memset of %zu bytes at %p leaves device memory\n",
                bytes, dst);
        return fail(cudaErrorInvalidValue);
    }
    return dat_emu::enqueue(stream, [=]() { memset(dst, value, bytes); },
                            {"CUDA", 0, "cudaMemsetAsync", ""});
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags)
{
    *stream = new CUstream_st;
    (*stream)->flags = flags;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    guard g(big_lock);
    if (!stream)
        return fail(cudaErrorInvalidResourceHandle);
    if (stream->capture)
        return fail(cudaErrorIllegalState);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) { return dat_emu::host_sync(stream); }

/* Work is done when it is queued; asking while capturing is refused. */
cudaError_t cudaStreamQuery(cudaStream_t stream) { return dat_emu::host_sync(stream); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags)
{
    (void)flags;
    *event = new CUevent_st;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    guard g(big_lock);
    event->capture = stream_of(stream)->capture;
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags)
{
    (void)flags;
    guard g(big_lock);
    CUstream_st *st = stream_of(stream);
    if (!event->capture || st->capture == event->capture)
        return cudaSuccess;
    if (st->capture) /* two captures cannot merge */
        return fail(cudaErrorStreamCaptureInvalidated);
    st->capture = event->capture;
    capturing.push_back(st);
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    (void)mode;
    guard g(big_lock);
    if (!stream) /* CUDA does not capture the legacy stream */
        return fail(cudaErrorStreamCaptureUnsupported);
    if (stream->capture)
        return fail(cudaErrorIllegalState);
    stream->capture = new CUgraph_st;
    capturing.push_back(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    guard g(big_lock);
    *graph = NULL;
    if (!stream || !stream->capture)
        return fail(cudaErrorIllegalState);
    CUgraph_st *gr = stream->capture;
    stop_capture(gr);
    if (gr->spoiled) {
        delete gr;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = gr;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags)
{
    (void)flags;
    *exec = new CUgraphExec_st{std::make_shared<const op_list>(graph->ops)};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    std::shared_ptr<const op_list> ops = exec->ops;
    return dat_emu::enqueue(
        stream,
        [ops]() {
            for (const auto &op : *ops)
                op();
        },
        {"CUDA", 0, "cudaGraphLaunch", ""});
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}
