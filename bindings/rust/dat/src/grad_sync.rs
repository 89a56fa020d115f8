//! The gradient synchronizer (`dat_grad_sync`, dat_comm.h): the all-reduce of
//! [`Comm::allreduce_grads`] cut into buckets that are reduced while the
//! model's backward pass still runs.
use std::ptr;

use crate::{check, sys, Comm, Error, Loss, Model, QuantMode, Quantizer, Result, Tensor};

/// Options of [`GradSync::new`] (dat_grad_sync_options without its quantizer,
/// which [`GradSync::new`] takes as a borrow).
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

/// A gradient synchronizer of a model over a communicator. Per step:
///
/// ```no_run
/// # use dat::{Comm, Context, GradSync, Loss, Model, Tensor};
/// # let ctx = Context::cpu(0, 1)?;
/// # let mut comm = Comm::new_self(&ctx)?;
/// # let mut model = Model::preset(&ctx, "mlp", &Default::default())?;
/// # let (x, y) = (Tensor::new(&ctx, dat::DType::Float32, &[2, 1, 28, 28])?,
/// #               Tensor::from_slice(&ctx, &[2], &[0i32, 1])?);
/// let mut sync = GradSync::new(&mut comm, &mut model, None, &Default::default())?;
/// for step in 0..3 {
///     sync.begin(step)?;
///     sync.loss_backward(&x, Some(&y), &Loss::default())?; // buckets start here
///     sync.end()?; // the gradient is the mean over the ranks
///     let model = sync.model()?; // e.g. for the optimizer's step
/// }
/// # Ok::<(), dat::Error>(())
/// ```
///
/// It borrows the communicator, the model and the quantizer mutably for `'a`,
/// so they outlive it and nothing else uses them meanwhile; between
/// [`GradSync::begin`] and [`GradSync::end`] the buckets may be reduced on a
/// communication thread, so the model is reachable only through
/// [`GradSync::loss_backward`] (once per step) and [`GradSync::model`] /
/// [`GradSync::comm`] return `DAT_ERR_STATE`. Drop it to have them back.
pub struct GradSync<'a, 'c> {
    raw: *mut sys::dat_grad_sync,
    comm: &'a mut Comm<'c>,
    model: &'a mut Model<'c>,
    _quantizer: Option<&'a mut Quantizer<'c>>,
    armed: bool,
    backward_ran: bool,
}

fn state(message: &str) -> Error {
    Error { status: sys::DAT_ERR_STATE, message: message.to_string() }
}

impl<'a, 'c> GradSync<'a, 'c> {
    /// Creates the synchronizer (dat_grad_sync_create): the exact mean without
    /// `quantizer`, else the quantized all-reduce with it (and `opts.mode`).
    /// Fails with `DAT_ERR_STATE` if the model already has a synchronizer.
    pub fn new(comm: &'a mut Comm<'c>, model: &'a mut Model<'c>,
               quantizer: Option<&'a mut Quantizer<'c>>, opts: &GradSyncOptions)
               -> Result<GradSync<'a, 'c>> {
        let mut o = sys::dat_grad_sync_options::default();
        o.bucket_elems = opts.bucket_elems;
        o.quantizer = quantizer.as_ref().map(|q| q.as_ptr()).unwrap_or(ptr::null_mut());
        o.mode = opts.mode.raw();
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_grad_sync_create(&mut raw, comm.as_ptr(), model.as_ptr(), &o) })?;
        Ok(GradSync { raw, comm, model, _quantizer: quantizer, armed: false,
                      backward_ran: false })
    }

    /// The C handle, owned by this `GradSync`.
    pub fn as_ptr(&self) -> *mut sys::dat_grad_sync {
        self.raw
    }

    /// Arms the synchronizer for one step (collective: every rank passes the
    /// same `step`, the quantizer's random stream). `DAT_ERR_STATE` if already
    /// armed or the communicator is broken.
    pub fn begin(&mut self, step: u64) -> Result<()> {
        check(unsafe { sys::dat_grad_sync_begin(self.raw, step) })?;
        self.armed = true;
        self.backward_ran = false;
        Ok(())
    }

    /// The model's loss backward ([`Model::loss_backward`]), whose pass starts
    /// the buckets' reductions when armed; returns the loss. Armed, it runs once
    /// per step (`DAT_ERR_STATE` the second time: the buckets may still read
    /// the gradient); with gradient accumulation, run the earlier passes before
    /// [`GradSync::begin`].
    pub fn loss_backward(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss) -> Result<f32> {
        self.backward_pass()?;
        self.model.loss_backward(x, y, loss)
    }

    /// As [`GradSync::loss_backward`] without reading the loss back
    /// ([`Model::loss_backward_on_device`]).
    pub fn loss_backward_on_device(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss)
                                   -> Result<()> {
        self.backward_pass()?;
        self.model.loss_backward_on_device(x, y, loss)
    }

    fn backward_pass(&mut self) -> Result<()> {
        if self.armed && self.backward_ran {
            return Err(state("GradSync::loss_backward: the armed step already ran its \
                              backward pass; call end() first"));
        }
        self.backward_ran = self.armed;
        Ok(())
    }

    /// Reduces the buckets not started yet and waits for all of them: the
    /// model's gradient is then the mean over the ranks. Disarms, also when it
    /// fails. `DAT_ERR_STATE` if not armed.
    pub fn end(&mut self) -> Result<()> {
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
    /// `DAT_ERR_STATE` while armed.
    pub fn model(&mut self) -> Result<&mut Model<'c>> {
        if self.armed {
            return Err(state("GradSync::model: armed (the buckets may be reducing the \
                              gradient); call end() first"));
        }
        Ok(&mut *self.model)
    }

    /// The communicator, between steps (its statistics, other collectives);
    /// `DAT_ERR_STATE` while armed (it belongs to the synchronizer then).
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
        unsafe { sys::dat_grad_sync_destroy(self.raw) }
    }
}
