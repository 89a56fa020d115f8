//! Step graphs (`dat_capture.h`): a whole training step recorded once and
//! replayed with one launch per batch. CUDA contexts only.
use std::marker::PhantomData;
use std::ptr;

use crate::{check, sys, Context, Result};

/// A recorded step; [`StepGraph::launch`] replays it on what the step's
/// tensors hold then. Borrows its context only: the objects the step used are
/// not borrowed (their tensors take each new batch between launches), which is
/// why [`Context::record`] is `unsafe`: it holds their device memory.
pub struct StepGraph<'c> {
    raw: *mut sys::dat_step_graph,
    _ctx: PhantomData<&'c Context>,
}

/// A recording in progress: ends it (dat_capture_end) and frees what it made
/// if dropped before [`Recording::end`], i.e. when the step panics, so the
/// context does not stay recording.
struct Recording<'c> {
    ctx: &'c Context,
}

impl<'c> Recording<'c> {
    fn end(self) -> (sys::dat_status, StepGraph<'c>) {
        let mut raw = ptr::null_mut();
        let status = unsafe { sys::dat_capture_end(self.ctx.as_ptr(), &mut raw) };
        std::mem::forget(self);
        (status, StepGraph { raw, _ctx: PhantomData })
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        let mut raw = ptr::null_mut();
        // The recording ends either way and the host's state is as before
        // dat_capture_begin when it fails (dat_capture.h); a graph it made
        // from a partial step is of no use.
        unsafe {
            sys::dat_capture_end(self.ctx.as_ptr(), &mut raw);
            sys::dat_step_graph_destroy(raw);
        }
    }
}

impl Context {
    /// Records the calls `step` makes on this context's objects (run the step
    /// once op by op first). The recording ends whatever `step` returns, and
    /// also if it panics (the panic then goes on, the partial graph freed);
    /// the first error wins: `step`'s own, else the end's (the message names
    /// the call that could not be recorded). Pass no loss to read back: use
    /// [`crate::Loss::loss_sum`].
    ///
    /// # Safety
    /// The graph holds the device memory of every libdat object the calls in
    /// `step` passed to libdat: tensors (a model's `params` / `grads`
    /// included), model, attack, optimizer, quantizer, communicator, gradient
    /// synchronizer; it borrows none of them. Until the returned `StepGraph`
    /// is dropped (its drop waits for the replays still queued), each of
    /// these C objects must stay alive, neither destroyed (its handle, or the
    /// handle that owns it, dropped, also after a `std::mem::swap` or `replace`
    /// moved it to another variable) nor given other storage for its data.
    /// The safe API of this crate never reallocates a tensor's data; the
    /// buffers libdat grows itself (the context's workspace, a model's,
    /// an attack's or a quantizer's scratch) are checked by
    /// [`StepGraph::launch`], which then fails with `DAT_ERR_STATE`.
    /// Writing or reading the tensors' contents between launches (the next
    /// batch into the step's inputs) is what the graph is for and is allowed,
    /// as are op-by-op calls on the same objects.
    pub unsafe fn record<F: FnOnce() -> Result<()>>(&self, step: F) -> Result<StepGraph<'_>> {
        let began = sys::dat_capture_begin(self.as_ptr());
        // Armed before check, which may raise a log closure's panic.
        let recording = if began == sys::DAT_OK { Some(Recording { ctx: self }) } else { None };
        check(began)?;
        let recording = recording.ok_or_else(|| crate::state("dat_capture_begin: not begun"))?;
        let ran = step();
        let (ended, graph) = recording.end();
        ran?;
        check(ended)?;
        Ok(graph)
    }
}

impl StepGraph<'_> {
    /// Queues one replay and advances the host's step counters; faults of the
    /// device-side checks come back from [`Context::synchronize`].
    pub fn launch(&mut self) -> Result<()> {
        check(unsafe { sys::dat_step_graph_launch(self.raw) })
    }
}

impl Drop for StepGraph<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_step_graph_destroy(self.raw) }
    }
}
