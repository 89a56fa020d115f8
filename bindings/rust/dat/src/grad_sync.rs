//! The gradient synchronizer (`dat_grad_sync`, dat_comm.h): the all-reduce of
//! [`Comm::allreduce_grads`] cut into buckets that are reduced while the
//! model's backward pass still runs.
use std::ptr;

use crate::{check, state, sys, Comm, Loss, Model, QuantMode, Quantizer, Result, Tensor};

/// Options of [`GradSync::scope`] (dat_grad_sync_options without its
/// quantizer, which [`GradSync::scope`] takes as a borrow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradSyncOptions {
    /// Gradient elements per bucket, > 0; default 1 << 20. With a quantizer, a
    /// multiple of its bucket.
    pub bucket_elems: i64,
    /// The quantized all-reduce's algorithm (with a quantizer only); default one-sided.
    pub mode: QuantMode,
}

impl Default for GradSyncOptions {
    /// The library's defaults (dat_grad_sync_options_init).
    fn default() -> Self {
        let o = sys::dat_grad_sync_options::default();
        let mode = if o.mode == sys::DAT_QUANT_TWO_SIDED {
            QuantMode::TwoSided
        } else {
            QuantMode::OneSided
        };
        GradSyncOptions { bucket_elems: o.bucket_elems, mode }
    }
}

/// A gradient synchronizer of a model over a communicator, lent to a closure
/// by [`GradSync::scope`]. Per step:
///
/// ```no_run
/// # use dat::{Comm, Context, GradSync, Loss, Model, Tensor};
/// # let ctx = Context::cpu(0, 1)?;
/// # let mut comm = Comm::new_self(&ctx)?;
/// # let mut model = Model::preset(&ctx, "mlp", &Default::default())?;
/// # let (x, y) = (Tensor::new(&ctx, dat::DType::Float32, &[2, 1, 28, 28])?,
/// #               Tensor::from_slice(&ctx, &[2], &[0i32, 1])?);
/// GradSync::scope(&mut comm, &mut model, None, &Default::default(), |sync| {
///     for step in 0..3 {
///         sync.begin(step)?;
///         sync.loss_backward(&x, Some(&y), &Loss::default())?; // buckets start here
///         sync.end()?; // the gradient is the mean over the ranks
///         let model = sync.model()?; // e.g. for the optimizer's step
///     }
///     Ok(())
/// })?;
/// # Ok::<(), dat::Error>(())
/// ```
///
/// The scope borrows the communicator, the model and the quantizer mutably,
/// so they outlive the synchronizer and nothing else uses them meanwhile; the
/// closure gets `&mut GradSync` only, so the synchronizer cannot be leaked
/// (`std::mem::forget`) with the C one still attached to the model: the scope
/// destroys it when the closure returns or panics. Between [`GradSync::begin`]
/// and [`GradSync::end`] the buckets may be reduced on a communication thread,
/// so the model is reachable only through [`GradSync::loss_backward`] (once
/// per step) and [`GradSync::model`] / [`GradSync::comm`] return
/// `DAT_ERR_STATE`.
///
/// Between steps, what [`GradSync::model`] and [`GradSync::comm`] lend can be
/// swapped with another model or communicator (`std::mem::swap`); libdat's
/// synchronizer still points at the first ones. Every call then fails with
/// `DAT_ERR_STATE` until they are swapped back; if they are not, the C
/// synchronizer is leaked (not destroyed: the model it would detach from may
/// be freed by then).
pub struct GradSync<'a, 'c> {
    raw: *mut sys::dat_grad_sync,
    comm: &'a mut Comm<'c>,
    model: &'a mut Model<'c>,
    // The C objects the synchronizer was made with and points at: what
    // `comm` and `model` must still hold (see `replaced`).
    comm_raw: *mut sys::dat_comm,
    model_raw: *mut sys::dat_model,
    _quantizer: Option<&'a mut Quantizer<'c>>,
    armed: bool,
    backward_ran: bool,
}

impl<'a, 'c> GradSync<'a, 'c> {
    /// Creates the synchronizer (dat_grad_sync_create), runs `f` with it and
    /// destroys it (dat_grad_sync_destroy, which waits for a reduction still
    /// running), also when `f` fails or panics; returns what `f` returns. The
    /// exact mean without `quantizer`, else the quantized all-reduce with it
    /// (and `opts.mode`). Fails with `DAT_ERR_STATE` if the model already has
    /// a synchronizer.
    pub fn scope<R, F>(comm: &'a mut Comm<'c>, model: &'a mut Model<'c>,
                       quantizer: Option<&'a mut Quantizer<'c>>, opts: &GradSyncOptions,
                       f: F) -> Result<R>
    where F: FnOnce(&mut GradSync<'a, 'c>) -> Result<R> {
        let mut o = sys::dat_grad_sync_options::default();
        o.bucket_elems = opts.bucket_elems;
        o.quantizer = quantizer.as_ref().map(|q| q.as_ptr()).unwrap_or(ptr::null_mut());
        o.mode = opts.mode.raw();
        let (comm_raw, model_raw) = (comm.as_ptr(), model.as_ptr());
        let mut raw = ptr::null_mut();
        let status = unsafe { sys::dat_grad_sync_create(&mut raw, comm_raw, model_raw, &o) };
        if raw.is_null() {
            check(status)?;
            return Err(state("dat_grad_sync_create returned no synchronizer"));
        }
        // Owned (so destroyed by Drop, while unwinding too) before check, which
        // may raise a log closure's panic. It stays in this frame: `f` cannot
        // move it out, forget it or drop it early.
        let mut sync = GradSync { raw, comm, model, comm_raw, model_raw, _quantizer: quantizer,
                                  armed: false, backward_ran: false };
        check(status)?;
        f(&mut sync)
    }

    /// The C handle, owned by this `GradSync`.
    pub fn as_ptr(&self) -> *mut sys::dat_grad_sync {
        self.raw
    }

    /// Whether the model or the communicator was swapped out through
    /// [`GradSync::model`] / [`GradSync::comm`]: the C synchronizer points at
    /// `model_raw` and `comm_raw`, which may be freed by now.
    fn replaced(&self) -> bool {
        self.model.as_ptr() != self.model_raw || self.comm.as_ptr() != self.comm_raw
    }

    fn check_not_replaced(&self, call: &str) -> Result<()> {
        if self.replaced() {
            return Err(state(&format!(
                "GradSync::{}: the model or the communicator was replaced (std::mem::swap \
                 through GradSync::model or GradSync::comm); the synchronizer works on the \
                 ones it was made with: swap them back", call)));
        }
        Ok(())
    }

    /// Arms the synchronizer for one step (collective: every rank passes the
    /// same `step`, the quantizer's random stream). `DAT_ERR_STATE` if already
    /// armed, the communicator is broken, or the model or the communicator
    /// was replaced.
    pub fn begin(&mut self, step: u64) -> Result<()> {
        self.check_not_replaced("begin")?;
        let status = unsafe { sys::dat_grad_sync_begin(self.raw, step) };
        // Set before check, which may raise a log closure's panic: the Rust
        // side must never take the synchronizer for unarmed while it is armed.
        if status == sys::DAT_OK {
            self.armed = true;
            self.backward_ran = false;
        }
        check(status)
    }

    /// The model's loss backward ([`Model::loss_backward`]), whose pass starts
    /// the buckets' reductions when armed; returns the loss. Armed, it runs once
    /// per step (`DAT_ERR_STATE` the second time: the buckets may still read
    /// the gradient); with gradient accumulation, run the earlier passes before
    /// [`GradSync::begin`].
    pub fn loss_backward(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss) -> Result<f32> {
        self.backward_pass("loss_backward")?;
        self.model.loss_backward(x, y, loss)
    }

    /// As [`GradSync::loss_backward`] without reading the loss back
    /// ([`Model::loss_backward_on_device`]).
    pub fn loss_backward_on_device(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss)
                                   -> Result<()> {
        self.backward_pass("loss_backward_on_device")?;
        self.model.loss_backward_on_device(x, y, loss)
    }

    fn backward_pass(&mut self, call: &str) -> Result<()> {
        self.check_not_replaced(call)?;
        if self.armed && self.backward_ran {
            return Err(state(&format!("GradSync::{}: the armed step already ran its \
                                       backward pass; call end() first", call)));
        }
        self.backward_ran = self.armed;
        Ok(())
    }

    /// Reduces the buckets not started yet and waits for all of them: the
    /// model's gradient is then the mean over the ranks. Disarms, also when it
    /// fails. `DAT_ERR_STATE` if not armed, or if the model or the
    /// communicator was replaced.
    pub fn end(&mut self) -> Result<()> {
        self.check_not_replaced("end")?;
        let st = unsafe { sys::dat_grad_sync_end(self.raw) };
        self.armed = false;
        self.backward_ran = false;
        check(st)
    }

    /// Whether the buckets are reduced while the backward pass runs (else all
    /// in [`GradSync::end`], with the same result).
    pub fn overlaps(&self) -> Result<bool> {
        let mut v = 0;
        check(unsafe { sys::dat_grad_sync_overlaps(self.raw, &mut v) })?;
        Ok(v != 0)
    }

    /// Whether [`GradSync::begin`] ran without its [`GradSync::end`].
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// The model, between steps (its gradient, the optimizer's step);
    /// `DAT_ERR_STATE` while armed. Lent also after it was swapped out (see
    /// [`GradSync`]), so that it can be swapped back.
    pub fn model(&mut self) -> Result<&mut Model<'c>> {
        if self.armed {
            return Err(state("GradSync::model: armed (the buckets may be reducing the \
                              gradient); call end() first"));
        }
        Ok(&mut *self.model)
    }

    /// The communicator, between steps (its statistics, other collectives);
    /// `DAT_ERR_STATE` while armed (it belongs to the synchronizer then). Lent
    /// also after it was swapped out, as [`GradSync::model`].
    pub fn comm(&mut self) -> Result<&mut Comm<'c>> {
        if self.armed {
            return Err(state("GradSync::comm: armed (the communicator belongs to the \
                              synchronizer); call end() first"));
        }
        Ok(&mut *self.comm)
    }
}

impl Drop for GradSync<'_, '_> {
    /// dat_grad_sync_destroy: waits for a reduction still running.
    fn drop(&mut self) {
        if self.replaced() {
            // The model or the communicator the C synchronizer points at was
            // swapped out and may be freed: destroying it would detach its
            // hook from that model (dat_grad_sync_destroy writes the model)
            // and libdat wants it destroyed before both. Leaked instead, which
            // is safe because it is not armed: `model()` and `comm()`, the
            // only ways to swap, are refused while armed, and `begin` refuses
            // to arm it once replaced; unarmed, the model's backward pass
            // never calls its hook, and its idle thread touches neither object.
            return;
        }
        unsafe { sys::dat_grad_sync_destroy(self.raw) }
    }
}
