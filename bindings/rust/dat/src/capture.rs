//! Step graphs (`dat_capture.h`): a whole training step recorded once and
//! replayed with one launch per batch. CUDA contexts only.
use std::marker::PhantomData;
use std::ptr;

use crate::{check, sys, Context, Result};

/// A recorded step; [`StepGraph::launch`] replays it on what the step's
/// tensors hold then. Borrows its context; the objects the step used must
/// outlive it too (it holds their device memory).
pub struct StepGraph<'c> {
    raw: *mut sys::dat_step_graph,
    _ctx: PhantomData<&'c Context>,
}

impl Context {
    /// Records the calls `step` makes on this context's objects (run the step
    /// once op by op first). The recording ends whatever `step` returns; the
    /// first error wins: `step`'s own, else the end's (the message names the
    /// call that could not be recorded). Pass no loss to read back: use
    /// [`crate::Loss::loss_sum`].
    pub fn record<F: FnOnce() -> Result<()>>(&self, step: F) -> Result<StepGraph<'_>> {
        check(unsafe { sys::dat_capture_begin(self.as_ptr()) })?;
        let ran = step();
        let mut raw = ptr::null_mut();
        let ended = check(unsafe { sys::dat_capture_end(self.as_ptr(), &mut raw) });
        let graph = StepGraph { raw, _ctx: PhantomData };
        ran?;
        ended?;
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
