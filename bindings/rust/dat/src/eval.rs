//! Evaluation (dat_eval.h): AutoAttack, randomized smoothing, statistics.
use std::ptr;

use crate::{check, invalid, len_i32, sys, Model, Result, Tensor};

// C structs re-exported as they are; their fields are documented in dat_eval.h.
/// Options of [`autoattack`] (dat_autoattack_options, dat_eval.h).
pub use sys::dat_autoattack_options as AutoAttackOptions;
/// Options of [`smooth_predict`] and [`smooth_certify`] (dat_smooth_options, dat_eval.h).
pub use sys::dat_smooth_options as SmoothOptions;

fn double(f: impl FnOnce(*mut f64) -> sys::dat_status) -> Result<f64> {
    let mut v = 0.0;
    check(f(&mut v))?;
    Ok(v)
}

/// Regularized incomplete beta function I_x(a, b).
pub fn incbeta(a: f64, b: f64, x: f64) -> Result<f64> {
    double(|o| unsafe { sys::dat_stat_incbeta(a, b, x, o) })
}

/// The p-quantile of Beta(a, b).
pub fn incbeta_inv(a: f64, b: f64, p: f64) -> Result<f64> {
    double(|o| unsafe { sys::dat_stat_incbeta_inv(a, b, p, o) })
}

/// Phi^-1(p).
pub fn normal_quantile(p: f64) -> Result<f64> {
    double(|o| unsafe { sys::dat_stat_normal_quantile(p, o) })
}

/// One-sided Clopper-Pearson lower bound of a binomial proportion.
pub fn clopper_pearson_lower(successes: i64, trials: i64, alpha: f64) -> Result<f64> {
    double(|o| unsafe { sys::dat_stat_clopper_pearson_lower(successes, trials, alpha, o) })
}

fn batch(x: &Tensor) -> Result<usize> {
    Ok(*x.shape()?.first().ok_or_else(|| invalid("x must be [N, C, H, W]"))? as usize)
}

/// PREDICT of the smoothed classifier: a class per sample, or
/// sys::DAT_SMOOTH_ABSTAIN.
pub fn smooth_predict(model: &mut Model, x: &Tensor, opts: &SmoothOptions) -> Result<Vec<i32>> {
    let mut pred = vec![0i32; batch(x)?];
    check(unsafe { sys::dat_smooth_predict(model.as_ptr(), x.as_ptr(), opts, pred.as_mut_ptr()) })?;
    Ok(pred)
}

/// CERTIFY: (class or abstention, l2 radius) per sample.
pub fn smooth_certify(model: &mut Model, x: &Tensor, opts: &SmoothOptions)
                      -> Result<(Vec<i32>, Vec<f32>)> {
    let n = batch(x)?;
    let (mut pred, mut radius) = (vec![0i32; n], vec![0f32; n]);
    check(unsafe {
        sys::dat_smooth_certify(model.as_ptr(), x.as_ptr(), opts, pred.as_mut_ptr(),
                                radius.as_mut_ptr())
    })?;
    Ok((pred, radius))
}

/// Certified accuracy at each radius.
pub fn certified_accuracy(pred: &[i32], radius: &[f32], labels: &[i32], radii: &[f32])
                          -> Result<Vec<f64>> {
    if pred.len() != radius.len() || pred.len() != labels.len() {
        return Err(invalid("pred, radius and labels must have one entry per sample"));
    }
    let num_radii = len_i32(radii.len(), "certified_accuracy: radii.len()")?;
    let mut acc = vec![0f64; radii.len()];
    check(unsafe {
        sys::dat_smooth_certified_accuracy(pred.as_ptr(), radius.as_ptr(), labels.as_ptr(),
                                           pred.len() as i64, radii.as_ptr(), num_radii,
                                           acc.as_mut_ptr())
    })?;
    Ok(acc)
}

/// AutoAttack of one batch: (robust count, per-sample outcome: sys::DAT_AA_ROBUST,
/// sys::DAT_AA_MISCLASSIFIED or the attack that broke the point).
pub fn autoattack(model: &mut Model, x: &Tensor, y: &Tensor, opts: &AutoAttackOptions,
                  x_adv: Option<&mut Tensor>) -> Result<(i32, Vec<i32>)> {
    let mut outcome = vec![0i32; batch(x)?];
    let mut robust = 0;
    let x_adv = x_adv.map(|t| t.as_ptr()).unwrap_or(ptr::null_mut());
    check(unsafe {
        sys::dat_eval_autoattack(model.as_ptr(), x.as_ptr(), y.as_ptr(), opts, x_adv,
                                 outcome.as_mut_ptr(), &mut robust)
    })?;
    Ok((robust, outcome))
}
