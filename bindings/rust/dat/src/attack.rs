//! Attacks: the inner maximization, Gaussian copies, robust accuracy.
use std::marker::PhantomData;
use std::ptr;

use crate::tensor::opt_ptr;
use crate::{check, sys, AttackOptions, Context, Model, Result, Tensor};

/// An attack oracle (PGD, FGSM, TRADES or SmoothAdv), configured once and applied
/// to batches.
pub struct Attack<'c> {
    raw: *mut sys::dat_attack,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> Attack<'c> {
    /// Creates an attack computing on `ctx` (dat_attack_create).
    pub fn new(ctx: &'c Context, opts: &AttackOptions) -> Result<Attack<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_attack_create(&mut raw, ctx.as_ptr(), opts) })?;
        Ok(Attack { raw, _ctx: PhantomData })
    }

    /// The C handle, owned by this `Attack`.
    pub fn as_ptr(&self) -> *mut sys::dat_attack {
        self.raw
    }

    /// The step counter, the position of its random draws (dat_attack_get_step).
    pub fn step(&self) -> Result<u64> {
        let mut s = 0;
        check(unsafe { sys::dat_attack_get_step(self.raw, &mut s) })?;
        Ok(s)
    }

    /// Sets the step counter, e.g. when resuming (dat_attack_set_step).
    pub fn set_step(&mut self, step: u64) -> Result<()> {
        check(unsafe { sys::dat_attack_set_step(self.raw, step) })
    }

    /// x_adv receives the adversarial examples of x (y may be None for TRADES)
    /// (dat_attack_perturb). Only input gradients are computed: the model's
    /// parameters and gradient buffer stay as they were.
    pub fn perturb(&mut self, model: &mut Model, x: &Tensor, y: Option<&Tensor>,
                   x_adv: &mut Tensor) -> Result<()> {
        check(unsafe {
            sys::dat_attack_perturb(self.raw, model.as_ptr(), x.as_ptr(), opt_ptr(y),
                                    x_adv.as_ptr())
        })
    }

    /// Noise copies of x (and y) for Smooth-AT: row j·N + i of x_out is
    /// x_i + sigma·noise, for j < noise_samples (dat_attack_gaussian_copies).
    /// The noise is what a SMOOTH_PGD perturbation by this attack draws at the
    /// same step: set the step back to take the copies the attack saw.
    pub fn gaussian_copies(&mut self, x: &Tensor, y: Option<&Tensor>, x_out: &mut Tensor,
                           y_out: Option<&mut Tensor>) -> Result<()> {
        let y_out = y_out.map(|t| t.as_ptr()).unwrap_or(ptr::null_mut());
        check(unsafe {
            sys::dat_attack_gaussian_copies(self.raw, x.as_ptr(), opt_ptr(y), x_out.as_ptr(), y_out)
        })
    }

    /// (clean correct, robust correct) of one batch; mask gets 1 where robust
    /// (dat_eval_robust_accuracy).
    pub fn robust_accuracy(&mut self, model: &mut Model, x: &Tensor, y: &Tensor,
                           mask: Option<&mut Tensor>) -> Result<(i32, i32)> {
        let (mut c, mut r) = (0, 0);
        let mask = mask.map(|t| t.as_ptr()).unwrap_or(ptr::null_mut());
        check(unsafe {
            sys::dat_eval_robust_accuracy(self.raw, model.as_ptr(), x.as_ptr(), y.as_ptr(),
                                          &mut c, &mut r, mask)
        })?;
        Ok((c, r))
    }
}

impl Drop for Attack<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_attack_destroy(self.raw) }
    }
}
