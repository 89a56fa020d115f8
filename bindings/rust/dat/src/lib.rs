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
//! [`GradSync::scope`] instead of a raw pointer.
//!
//! A panic in a Rust closure that libdat calls back (a log closure, the
//! `on_tensor` report of [`Model::load_with`]) never unwinds through libdat's C
//! frames: it is caught at the boundary and raised again once the C call has
//! returned to Rust.
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

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
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
///
/// It first raises again a panic of a log closure ([`Context::with_log`])
/// that libdat called on this thread since (caught there, as it must not
/// unwind through C): every wrapper checks its call's status, so the panic
/// leaves the call that logged.
pub fn check(status: sys::dat_status) -> Result<()> {
    resume_callback_panic();
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

/// An error of a call in the wrong state, with the status the C library would give.
pub(crate) fn state(message: &str) -> Error {
    Error { status: sys::DAT_ERR_STATE, message: message.to_string() }
}

/// A length or count as the C API's `int32_t`; `DAT_ERR_INVALID_ARG` naming
/// `what` when it does not fit (a cast would wrap and pass libdat a wrong count).
pub(crate) fn len_i32(len: usize, what: &str) -> Result<i32> {
    i32::try_from(len).map_err(|_| {
        invalid(&format!("{} = {} does not fit libdat's int32_t (at most {})", what, len,
                         i32::MAX))
    })
}

thread_local! {
    /// The payload of a panic caught in a callback on this thread, to raise
    /// again once control is back in Rust.
    static CALLBACK_PANIC: RefCell<Option<Box<dyn Any + Send>>> = RefCell::new(None);
}

/// Runs the body of an `extern "C"` callback, catching a panic: unwinding out
/// of it would cross C frames (undefined behavior with rustc 1.63). The first
/// payload is kept for [`resume_callback_panic`]; later ones are leaked.
pub(crate) fn catch_callback_panic<F: FnOnce()>(body: F) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(body)) {
        let mut extra = Some(payload);
        let _ = CALLBACK_PANIC.try_with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = extra.take();
            }
        });
        // A payload not kept is leaked, not dropped: its Drop is user code that
        // could panic again, here, inside the callback.
        std::mem::forget(extra);
    }
}

/// Raises again the panic [`catch_callback_panic`] caught on this thread, if any.
pub(crate) fn resume_callback_panic() {
    let pending = CALLBACK_PANIC.try_with(|slot| slot.borrow_mut().take()).ok().flatten();
    if let Some(payload) = pending {
        panic::resume_unwind(payload);
    }
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
    // The closure of `with_log`, whose address libdat keeps as `log_user`:
    // boxed so that it stays put when the `Context` moves, and dropped after
    // `dat_ctx_destroy` (fields drop after `Drop::drop`).
    _log: Option<Box<LogFn>>,
}

/// What [`Context::with_log`] keeps: the closure, boxed again so that one thin
/// pointer (`log_user`) reaches it.
type LogFn = Box<dyn Fn(sys::dat_log_level, &str) + Send + Sync>;

unsafe extern "C" fn log_relay(level: sys::dat_log_level, message: *const c_char,
                               user: *mut c_void) {
    catch_callback_panic(|| {
        // Safety: user is the LogFn boxed in the Context that libdat calls us
        // for, alive until after dat_ctx_destroy; message is a NUL-terminated
        // line valid during the call (dat_log_fn).
        let log = &*(user as *const LogFn);
        log(level, &CStr::from_ptr(message).to_string_lossy());
    });
}

impl Context {
    /// Creates a context. `opts.log_fn` must be `None` (else
    /// `DAT_ERR_INVALID_ARG`): libdat keeps the raw callback and its
    /// `log_user` for the context's life and calls it from C, which safe code
    /// cannot vouch for; pass a closure to [`Context::with_log`] instead (or
    /// use the unsafe [`Context::with_raw_log`]).
    pub fn new(opts: &CtxOptions) -> Result<Context> {
        if opts.log_fn.is_some() {
            return Err(invalid("Context::new: opts.log_fn is set; pass a closure to \
                                Context::with_log (or use the unsafe Context::with_raw_log)"));
        }
        // Safety: no callback for libdat to keep.
        unsafe { Context::with_raw_log(opts) }
    }

    /// Creates a context whose log lines (up to `opts.log_level`) go to `log`
    /// as (level, line); the context owns the closure. `opts.log_fn` and
    /// `opts.log_user` are replaced. libdat may log from any thread that uses
    /// the context, hence `Send + Sync`. A panic in `log` does not unwind
    /// through libdat: it is caught and raised again on that thread when the
    /// libdat call that logged returns to Rust ([`check`]; an object that call
    /// was creating is then leaked), or, for a call that returns no status (a
    /// handle's drop), by the next call that does.
    pub fn with_log<F>(opts: &CtxOptions, log: F) -> Result<Context>
    where F: Fn(sys::dat_log_level, &str) + Send + Sync + 'static {
        let log: Box<LogFn> = Box::new(Box::new(log));
        let mut o = *opts;
        o.log_fn = Some(log_relay);
        o.log_user = &*log as *const LogFn as *mut c_void;
        let mut raw = ptr::null_mut();
        let status = unsafe { sys::dat_ctx_create(&mut raw, &o) };
        // Owned before check, which may raise a panic of `log` (dat_ctx_create
        // logs): the context is then destroyed while unwinding.
        let ctx = if raw.is_null() { None } else { Some(Context { raw, _log: Some(log) }) };
        check(status)?;
        ctx.ok_or_else(|| invalid("dat_ctx_create returned no context"))
    }

    /// Creates a context with `opts` as they are, `opts.log_fn` included
    /// (dat_ctx_create).
    ///
    /// # Safety
    /// If `opts.log_fn` is set: libdat keeps it and `opts.log_user` and calls
    /// `log_fn(level, line, log_user)` from any thread that uses the context,
    /// until the context is dropped (during its drop included). So `log_user`
    /// must stay valid for what `log_fn` does with it until then, and `log_fn`
    /// must be safe to call so, concurrently too, and must never unwind (a
    /// Rust `extern "C" fn` that panics is undefined behavior with rustc
    /// 1.63: catch the panic inside it).
    pub unsafe fn with_raw_log(opts: &CtxOptions) -> Result<Context> {
        let mut raw = ptr::null_mut();
        let status = sys::dat_ctx_create(&mut raw, opts);
        let ctx = if raw.is_null() { None } else { Some(Context { raw, _log: None }) };
        check(status)?;
        ctx.ok_or_else(|| invalid("dat_ctx_create returned no context"))
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
/// ```compile_fail,E0505
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let t = dat::Tensor::new(&ctx, dat::DType::Float32, &[4]).unwrap();
/// drop(ctx); // error: `ctx` is borrowed by `t`
/// t.numel().unwrap();
/// ```
///
/// and a model's parameter tensor borrows the model:
///
/// ```compile_fail,E0505
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// let p = m.params().unwrap();
/// drop(m); // error: `m` is borrowed by `p`
/// p.numel().unwrap();
/// ```
///
/// and a gradient synchronizer's scope borrows its communicator and model,
/// which are reached through it while it lives:
///
/// ```compile_fail,E0505
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut comm = dat::Comm::new_self(&ctx).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// dat::GradSync::scope(&mut comm, &mut m, None, &Default::default(), |sync| {
///     drop(m); // error: `m` is borrowed by the scope
///     sync.begin(0)
/// }).unwrap();
/// ```
///
/// and the synchronizer stays in its scope, which destroys it: it cannot be
/// forgotten with the C synchronizer still attached to the model (its hook
/// would reach a freed communicator):
///
/// ```compile_fail,E0507
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut comm = dat::Comm::new_self(&ctx).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// dat::GradSync::scope(&mut comm, &mut m, None, &Default::default(), |sync| {
///     sync.begin(0)?;
///     std::mem::forget(*sync); // error: cannot move out of `*sync`
///     Ok(())
/// }).unwrap();
/// ```
///
/// A loss sum that libdat writes is borrowed mutably, so no view of its memory
/// lives meanwhile:
///
/// ```compile_fail,E0502
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// let x = dat::Tensor::new(&ctx, dat::DType::Float32, &[4, 1, 28, 28]).unwrap();
/// let y = dat::Tensor::from_slice(&ctx, &[4], &[0i32, 1, 2, 3]).unwrap();
/// let mut sum = dat::Tensor::new(&ctx, dat::DType::Float32, &[1]).unwrap();
/// let view: &[f32] = sum.as_slice().unwrap();
/// let loss = dat::Loss { loss_sum: Some(&mut sum), ..Default::default() }; // error
/// m.loss_backward(&x, Some(&y), &loss).unwrap();
/// assert_eq!(view[0], 0.0);
/// ```
///
/// A step graph holds the device memory of what its step used without
/// borrowing it, so recording is `unsafe` (see [`Context::record`]):
///
/// ```compile_fail,E0133
/// let ctx = dat::Context::cpu(0, 1).unwrap();
/// let mut m = dat::Model::preset(&ctx, "mlp", &Default::default()).unwrap();
/// let x = dat::Tensor::new(&ctx, dat::DType::Float32, &[4, 1, 28, 28]).unwrap();
/// let graph = ctx.record(|| m.loss_backward_on_device(&x, None, &Default::default()));
/// ```
pub mod lifetimes {}

#[cfg(test)]
mod tests {
    #[test]
    fn lengths_beyond_i32_are_refused() {
        assert_eq!(super::len_i32(i32::MAX as usize, "n"), Ok(i32::MAX));
        let e = super::len_i32(i32::MAX as usize + 1, "shape.len()").unwrap_err();
        assert_eq!(e.status, super::sys::DAT_ERR_INVALID_ARG);
        assert!(e.message.starts_with("shape.len() = 2147483648 does not fit"), "{}", e.message);
    }
}
