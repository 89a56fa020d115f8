/*
 * The emulator's grid runner: blocks one after another, a block's threads as
 * fibers on the calling thread. A fiber runs until it finishes or reaches a
 * barrier; when every live thread of the block (or of the warp, for shuffles
 * and ballots) waits at one, they go on. Anything else is a deadlock on a
 * GPU too, and is reported with the kernel's coordinates.
 *
 * The context switch is a few instructions of x86-64 assembly (callee-saved
 * registers and the stack pointer): ucontext's would make a system call per
 * switch, and a grid has a fiber per element.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <functional>

#include "emu.h"

#if !defined(__x86_64__)
#error "the CUDA emulation switches fibers with x86-64 assembly"
#endif

extern "C" void dat_emu_switch(void **save_sp, void *to_sp);

/* Saves the callee-saved registers on the current stack, stores its pointer
 * in *save_sp (rdi), moves to to_sp (rsi) and restores that stack's. */
asm(R"(
    .text
    .globl dat_emu_switch
    .hidden dat_emu_switch
    .type dat_emu_switch, @function
dat_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size dat_emu_switch, .-dat_emu_switch
)");

namespace dat_emu {

dim3 grid_dim, block_dim, block_idx;

namespace {

enum fiber_state { READY, AT_BLOCK, AT_WARP, DONE };

struct fiber {
    void *sp;
    dim3 tid;
    int linear;
    fiber_state state;
};

constexpr size_t MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 64 * 1024;

char *stacks;                 /* MAX_THREADS stacks, reserved once, touched lazily */
fiber fibers[MAX_THREADS];
int n_threads;                /* of the running block */
fiber *current;
void *scheduler_sp;
const std::function<void()> *thread_body; /* what every thread of the grid runs */
uint64_t slots[MAX_THREADS];  /* what each lane publishes to its warp */

/* The first switch to a fiber returns here, on its own stack. */
void fiber_entry()
{
    (*thread_body)();
    current->state = DONE;
    dat_emu_switch(&current->sp, scheduler_sp);
    abort(); /* a finished fiber is never resumed */
}

void *fresh_stack(int i)
{
    uint64_t *top = (uint64_t *)(stacks + (size_t)(i + 1) * STACK_BYTES);
    top[-1] = 0;                       /* fiber_entry's return address: none */
    top[-2] = (uint64_t)&fiber_entry;  /* where dat_emu_switch's ret goes */
    for (int r = 3; r <= 8; ++r)       /* rbp rbx r12 r13 r14 r15 */
        top[-r] = 0;
    return top - 8;
}

void wait_at(fiber_state s)
{
    current->state = s;
    dat_emu_switch(&current->sp, scheduler_sp);
}

/* Lets a warp whose live lanes all wait at a warp barrier go on. */
bool release_warps()
{
    bool any = false;
    for (int w = 0; w < n_threads; w += 32) {
        int end = w + 32 < n_threads ? w + 32 : n_threads;
        bool waiting = false, all = true;
        for (int i = w; i < end; ++i) {
            waiting |= fibers[i].state == AT_WARP;
            all &= fibers[i].state == AT_WARP || fibers[i].state == DONE;
        }
        if (waiting && all) {
            for (int i = w; i < end; ++i)
                if (fibers[i].state == AT_WARP)
                    fibers[i].state = READY;
            any = true;
        }
    }
    return any;
}

bool release_block()
{
    bool waiting = false;
    for (int i = 0; i < n_threads; ++i) {
        if (fibers[i].state != AT_BLOCK && fibers[i].state != DONE)
            return false;
        waiting |= fibers[i].state == AT_BLOCK;
    }
    for (int i = 0; i < n_threads; ++i)
        if (fibers[i].state == AT_BLOCK)
            fibers[i].state = READY;
    return waiting;
}

[[noreturn]] void deadlock()
{
    fprintf(stderr,
            "CUDA emulation: block (%u, %u, %u) of grid (%u, %u, %u), %d threads: its threads "
            "wait at different barriers (a __syncthreads or warp collective not every live "
            "thread reaches)\n",
            block_idx.x, block_idx.y, block_idx.z, grid_dim.x, grid_dim.y, grid_dim.z,
            n_threads);
    abort();
}

void run_block()
{
    for (int i = 0; i < n_threads; ++i) {
        fiber &f = fibers[i];
        f.linear = i;
        f.tid = dim3(i % block_dim.x, i / block_dim.x % block_dim.y,
                     i / (block_dim.x * block_dim.y));
        f.state = READY;
        f.sp = fresh_stack(i);
    }
    for (;;) {
        bool live = false;
        for (int i = 0; i < n_threads; ++i) {
            if (fibers[i].state != READY)
                continue;
            current = &fibers[i];
            dat_emu_switch(&scheduler_sp, current->sp);
        }
        for (int i = 0; i < n_threads; ++i)
            live |= fibers[i].state != DONE;
        if (!live)
            return;
        if (!release_warps() && !release_block())
            deadlock();
    }
}

/* Runs body once per thread of every block of the grid, on this thread. */
void run_grid(dim3 grid, dim3 block, const std::function<void()> &body)
{
    if (!stacks) {
        void *p = mmap(NULL, MAX_THREADS * STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "CUDA emulation: cannot reserve the fibers' stacks\n");
            abort();
        }
        stacks = (char *)p;
    }
    grid_dim = grid;
    block_dim = block;
    n_threads = (int)(block.x * block.y * block.z);
    thread_body = &body;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                block_idx = dim3(x, y, z);
                run_block();
            }
}

} // namespace

const dim3 &thread_idx(void) { return current->tid; }

int lane(void) { return current->linear % 32; }

void block_barrier(void) { wait_at(AT_BLOCK); }

void check_aligned(const void *p, size_t bytes)
{
    if ((uintptr_t)p % bytes == 0)
        return;
    const dim3 &t = thread_idx();
    fprintf(stderr,
            "CUDA emulation: thread (%u, %u, %u) of block (%u, %u, %u): a %zu-byte access at %p, "
            "which is not a multiple of %zu (misaligned address)\n",
            t.x, t.y, t.z, block_idx.x, block_idx.y, block_idx.z, bytes, p, bytes);
    abort();
}

uint64_t exchange(uint64_t mine, int src)
{
    int me = current->linear, base = me - me % 32;
    slots[me] = mine;
    wait_at(AT_WARP);
    uint64_t got = base + src < n_threads ? slots[base + src] : mine;
    wait_at(AT_WARP); /* nobody overwrites a slot before its readers have read it */
    return got;
}

unsigned ballot(int pred)
{
    int me = current->linear, base = me - me % 32;
    slots[me] = pred != 0;
    wait_at(AT_WARP);
    unsigned bits = 0;
    for (int l = 0; l < 32 && base + l < n_threads; ++l)
        bits |= (unsigned)slots[base + l] << l;
    wait_at(AT_WARP);
    return bits;
}

cudaError_t queue_grid(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> thread,
                       const site &from)
{
    size_t threads = (size_t)block.x * block.y * block.z;
    if (threads == 0 || threads > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || block.z > 64)
        return fail(cudaErrorInvalidConfiguration);
    return enqueue(
        s, [grid, block, thread = std::move(thread)]() { run_grid(grid, block, thread); }, from);
}

} // namespace dat_emu
