//! Safe Rust wrappers of libdat, the C library for distributed adversarial
//! training (DAT).
//!
//! Every handle owns its C object and destroys it in `Drop`. Objects made from
//! a [`Context`] borrow it (`Tensor<'c>`, `Model<'c>`, ...), so the borrow
//! checker refuses to drop a context while anything made from it lives, and
//! tensors owned by a model ([`Model::params`]) borrow the model. Failing calls
//! return [`Error`] with the status and the message of `dat_last_error()`.
//!
//! The option structs are those of `dat-sys`, re-exported here with their C
//! names; `Default::default()` fills them with the library's defaults.
//! [`GradSyncOptions`] is the exception: its quantizer is a borrow passed to
//! [`GradSync::new`] instead of a raw pointer.
//!
//! ```no_run
//! use dat::{Context, Model, Attack, Optimizer, Tensor, DType};
//! let ctx = Context::new(&dat::CtxOptions::default())?;
//! let mut model = Model::preset(&ctx, "mlp", &dat::ModelOptions::default())?;
//! let mut attack = Attack::new(&ctx, &dat::AttackOptions::default())?;
//! let mut optim = Optimizer::for_model(&mut model, &dat::OptimOptions::default())?;
//! let x = Tensor::new(&ctx, DType::Float32, &[8, 1, 28, 28])?;
//! let y = Tensor::new(&ctx, DType::Int32, &[8])?;
//! let mut x_adv = Tensor::new(&ctx, DType::Float32, &[8, 1, 28, 28])?;
//! attack.perturb(&mut model, &x, Some(&y), &mut x_adv)?;
//! model.loss_backward(&x_adv, Some(&y), &dat::Loss::default())?;
//! optim.step_model(&mut model)?;
//! # Ok::<(), dat::Error>(())
//! ```
#![deny(missing_docs)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::ptr;

/// The raw C API (the `dat-sys` crate), for what the safe wrappers leave out.
pub use dat_sys as sys;

mod attack;
mod capture;
mod comm;
mod data;
mod grad_sync;
pub mod eval;
mod model;
mod optim;
mod tensor;

pub use attack::Attack;
pub use capture::StepGraph;
pub use comm::{Comm, CommStats, QuantMode, Quantizer, UniqueId};
pub use data::Dataset;
pub use grad_sync::{GradSync, GradSyncOptions};
pub use model::{Loss, Model, ModelBuilder, Segment};
pub use optim::{load_checkpoint, save_checkpoint, Optimizer, Position};
pub use tensor::{DType, Element, Tensor};

// The C structs below are re-exported as they are; their fields are
// documented in include/libdat/*.h.
/// Options of [`Attack::new`] (dat_attack_options, dat_attack.h).
pub use sys::dat_attack_options as AttackOptions;
/// Options of the communicators, e.g. [`Comm::nccl`] (dat_comm_options, dat_comm.h).
pub use sys::dat_comm_options as CommOptions;
/// Options of [`Context::new`] (dat_ctx_options, dat_ctx.h).
pub use sys::dat_ctx_options as CtxOptions;
/// Options of [`Dataset::open`] (dat_dataset_options, dat_data.h).
pub use sys::dat_dataset_options as DatasetOptions;
/// Options of [`Model::input_grad_with`] (dat_input_grad_options, dat_model.h).
pub use sys::dat_input_grad_options as InputGradOptions;
/// One layer for [`ModelBuilder::add`]; get it from [`ModelBuilder::spec`] (dat_layer_spec,
/// dat_model.h).
pub use sys::dat_layer_spec as LayerSpec;
/// Options of [`Model::preset`] (dat_model_options, dat_model.h).
pub use sys::dat_model_options as ModelOptions;
/// Options of [`Optimizer::new`] and [`Optimizer::for_model`] (dat_optim_options,
/// dat_optim.h).
pub use sys::dat_optim_options as OptimOptions;
/// Options of [`Quantizer::new`] (dat_quantizer_options, dat_quant.h).
pub use sys::dat_quantizer_options as QuantizerOptions;

/// A failed libdat call: its status and what `dat_last_error()` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The status the call returned, never `DAT_OK`.
    pub status: sys::dat_status,
    /// What was wrong and where, e.g. `dat_tensor_create: shape[1] = -3 must be
    /// positive`.
    pub message: String,
}

impl Error {
    /// The status's name, e.g. "DAT_ERR_INVALID_ARG".
    pub fn name(&self) -> String {
        status_string(self.status)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message)
    }
}

impl std::error::Error for Error {}

/// The result of a fallible call.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a status into a Result, taking the thread's message on failure.
pub fn check(status: sys::dat_status) -> Result<()> {
    if status == sys::DAT_OK {
        Ok(())
    } else {
        Err(Error { status, message: last_error() })
    }
}

/// An error made on the Rust side (a bad string, a size mismatch), with the
/// status the C library would give.
pub(crate) fn invalid(message: &str) -> Error {
    Error { status: sys::DAT_ERR_INVALID_ARG, message: message.to_string() }
}

pub(crate) fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| invalid("a string holds a NUL byte"))
}

fn static_str(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // Safety: libdat returns NUL-terminated strings that live at least until the
    // next failing call on this thread; we copy at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Name of a status.
pub fn status_string(status: sys::dat_status) -> String {
    static_str(unsafe { sys::dat_status_string(status) })
}

/// The calling thread's last error message ("" if none).
pub fn last_error() -> String {
    static_str(unsafe { sys::dat_last_error() })
}

/// Clears the calling thread's last error message.
pub fn clear_error() {
    unsafe { sys::dat_clear_error() }
}

/// Version of the library in use, "major.minor.patch".
pub fn version() -> String {
    static_str(unsafe { sys::dat_version_string() })
}

/// Version of the library in use as major * 10000 + minor * 100 + patch.
pub fn version_number() -> u32 {
    unsafe { sys::dat_version() }
}

/// Whether this build of libdat has the CUDA backend.
pub fn has_cuda() -> bool {
    unsafe { sys::dat_has_cuda() != 0 }
}

/// Number of visible CUDA devices (0 without CUDA or GPU).
pub fn cuda_device_count() -> Result<i32> {
    let mut n = 0;
    check(unsafe { sys::dat_cuda_device_count(&mut n) })?;
    Ok(n)
}

/// A libdat context: device, threads, seed. Everything else borrows it.
pub struct Context {
    raw: *mut sys::dat_ctx,
}

impl Context {
    /// Creates a context. `opts.log_fn` may be set to receive log lines.
    pub fn new(opts: &CtxOptions) -> Result<Context> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_ctx_create(&mut raw, opts) })?;
        Ok(Context { raw })
    }

    /// A CPU context with this seed and thread count (0 = all cores).
    pub fn cpu(seed: u64, num_threads: i32) -> Result<Context> {
        let mut o = CtxOptions::default();
        o.seed = seed;
        o.num_threads = num_threads;
        Context::new(&o)
    }

    /// The C handle, owned by this `Context`.
    pub fn as_ptr(&self) -> *mut sys::dat_ctx {
        self.raw
    }

    /// (device kind, CUDA ordinal or -1).
    pub fn device(&self) -> Result<(sys::dat_device_kind, i32)> {
        let (mut k, mut o) = (0, 0);
        check(unsafe { sys::dat_ctx_device(self.raw, &mut k, &mut o) })?;
        Ok((k, o))
    }

    /// Host threads it computes with; never 0 (dat_ctx_num_threads).
    pub fn num_threads(&self) -> Result<i32> {
        let mut n = 0;
        check(unsafe { sys::dat_ctx_num_threads(self.raw, &mut n) })?;
        Ok(n)
    }

    /// Seed (Philox key) of its random generator (dat_ctx_seed).
    pub fn seed(&self) -> Result<u64> {
        let mut s = 0;
        check(unsafe { sys::dat_ctx_seed(self.raw, &mut s) })?;
        Ok(s)
    }

    /// Waits for the device's queued work.
    pub fn synchronize(&self) -> Result<()> {
        check(unsafe { sys::dat_ctx_synchronize(self.raw) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { sys::dat_ctx_destroy(self.raw) }
    }
}

/// Handles borrow their context, so it cannot be dropped while they live:
///
/// ```compile_fail
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let t = dat::Tensor::new(&ctx, dat::DType::Float32, &[4]).unwrap();
/// drop(ctx); // error: `ctx` is borrowed by `t`
/// t.numel().unwrap();
/// ```
///
/// and a model's parameter tensor borrows the model:
///
/// ```compile_fail
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// let p = m.params().unwrap();
/// drop(m); // error: `m` is borrowed by `p`
/// p.numel().unwrap();
/// ```
///
/// and a gradient synchronizer borrows its communicator and model, which are
/// reached through it while it lives:
///
/// ```compile_fail
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut comm = dat::Comm::new_self(&ctx).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// let mut sync = dat::GradSync::new(&mut comm, &mut m, None, &Default::default()).unwrap();
/// drop(m); // error: `m` is borrowed by `sync`
/// sync.begin(0).unwrap();
/// ```
pub mod lifetimes {}

