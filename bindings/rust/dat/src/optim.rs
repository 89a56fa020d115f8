//! The optimizer (LALR: LARS / LAMB) and training checkpoints.
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr;

use crate::model::Segment;
use crate::{check, cstring, len_i32, sys, Context, Model, OptimOptions, Result, Tensor};

/// The optimizer: SGD, momentum, Nesterov, Adam or AdamW, with or without the
/// layer-wise adaptive rate, and a learning-rate schedule.
pub struct Optimizer<'c> {
    raw: *mut sys::dat_optim,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> Optimizer<'c> {
    /// An optimizer over a model's parameters and segments
    /// (dat_optim_create_for_model).
    pub fn for_model(model: &mut Model<'c>, opts: &OptimOptions) -> Result<Optimizer<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_optim_create_for_model(&mut raw, model.as_ptr(), opts) })?;
        Ok(Optimizer { raw, _ctx: PhantomData })
    }

    /// An optimizer over a flat buffer cut into `segments` (names are not needed)
    /// (dat_optim_create).
    pub fn new(ctx: &'c Context, segments: &[Segment], opts: &OptimOptions)
               -> Result<Optimizer<'c>> {
        let raw_segs: Vec<sys::dat_segment> = segments
            .iter()
            .map(|s| {
                let mut r = sys::dat_segment::default();
                r.offset = s.offset;
                r.length = s.length;
                r.kind = s.kind;
                r
            })
            .collect();
        let count = len_i32(raw_segs.len(), "Optimizer::new: segments.len()")?;
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::dat_optim_create(&mut raw, ctx.as_ptr(), raw_segs.as_ptr(), count, opts)
        })?;
        Ok(Optimizer { raw, _ctx: PhantomData })
    }

    /// The C handle, owned by this `Optimizer`.
    pub fn as_ptr(&self) -> *mut sys::dat_optim {
        self.raw
    }

    /// One step on `params` from `grads` (dat_optim_step); `DAT_ERR_NUMERIC`,
    /// with nothing changed, when the gradient holds NaN or Inf.
    pub fn step(&mut self, params: &mut Tensor, grads: &Tensor) -> Result<()> {
        check(unsafe { sys::dat_optim_step(self.raw, params.as_ptr(), grads.as_ptr()) })
    }

    /// One step on a model's own parameters and gradients (dat_optim_step_model).
    pub fn step_model(&mut self, model: &mut Model) -> Result<()> {
        check(unsafe { sys::dat_optim_step_model(self.raw, model.as_ptr()) })
    }

    /// Scales the rate of `count` segments from `first_segment` (0 freezes them)
    /// (dat_optim_set_lr_scale). Not part of the saved state: set it again after
    /// a resume.
    pub fn set_lr_scale(&mut self, first_segment: i32, count: i32, scale: f32) -> Result<()> {
        check(unsafe { sys::dat_optim_set_lr_scale(self.raw, first_segment, count, scale) })
    }

    /// The learning rate of the next step, schedule and scaling applied
    /// (dat_optim_lr).
    pub fn lr(&self) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { sys::dat_optim_lr(self.raw, &mut v) })?;
        Ok(v)
    }

    /// Steps taken so far: the schedule's position (dat_optim_get_step).
    pub fn get_step(&self) -> Result<i64> {
        let mut v = 0;
        check(unsafe { sys::dat_optim_get_step(self.raw, &mut v) })?;
        Ok(v)
    }

    /// Sets the schedule's position; the moments are unchanged (dat_optim_set_step).
    pub fn set_step(&mut self, step: i64) -> Result<()> {
        check(unsafe { sys::dat_optim_set_step(self.raw, step) })
    }

    /// The serialized state: moments and step (dat_optim_state_save).
    pub fn state_save(&self) -> Result<Vec<u8>> {
        let mut n = 0;
        check(unsafe { sys::dat_optim_state_size(self.raw, &mut n) })?;
        let mut buf = vec![0u8; n];
        check(unsafe { sys::dat_optim_state_save(self.raw, buf.as_mut_ptr() as *mut c_void, n) })?;
        Ok(buf)
    }

    /// Restores a state from [`Optimizer::state_save`] of an optimizer of the same
    /// kind and parameter count (dat_optim_state_load); `DAT_ERR_FORMAT`, with
    /// nothing changed, for another's or a corrupt one.
    pub fn state_load(&mut self, state: &[u8]) -> Result<()> {
        check(unsafe {
            sys::dat_optim_state_load(self.raw, state.as_ptr() as *const c_void, state.len())
        })
    }
}

impl Drop for Optimizer<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_optim_destroy(self.raw) }
    }
}

/// Where a run stands (dat_checkpoint_info).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Epochs completed.
    pub epoch: i64,
    /// Optimizer steps completed.
    pub step: i64,
    /// The attack's step counter (its Philox position), see [`Attack::step`](crate::Attack::step).
    pub attack_step: u64,
}

/// Writes model, optimizer state and position to `path` atomically, with
/// `config` (any text) as metadata (dat_checkpoint_save).
pub fn save_checkpoint(path: &str, model: &mut Model, optim: Option<&Optimizer>,
                       position: Position, config: Option<&str>) -> Result<()> {
    let p = cstring(path)?;
    let config = match config {
        Some(c) => Some(cstring(c)?),
        None => None,
    };
    let mut info = sys::dat_checkpoint_info::default();
    info.epoch = position.epoch;
    info.step = position.step;
    info.attack_step = position.attack_step;
    check(unsafe {
        sys::dat_checkpoint_save(p.as_ptr(), model.as_ptr(),
                                 optim.map(|o| o.as_ptr()).unwrap_or(ptr::null_mut()), &info,
                                 config.as_ref().map(|c| c.as_ptr()).unwrap_or(ptr::null()))
    })
}

/// Restores a checkpoint, all or nothing for the model, then the optimizer;
/// returns its position and configuration text (dat_checkpoint_load).
pub fn load_checkpoint(path: &str, model: &mut Model, optim: Option<&mut Optimizer>)
                       -> Result<(Position, String)> {
    let p = cstring(path)?;
    let mut info = sys::dat_checkpoint_info::default();
    let mut config = vec![0u8; 1 << 16];
    check(unsafe {
        sys::dat_checkpoint_load(p.as_ptr(), model.as_ptr(),
                                 optim.map(|o| o.as_ptr()).unwrap_or(ptr::null_mut()), &mut info,
                                 config.as_mut_ptr() as *mut std::os::raw::c_char, config.len())
    })?;
    let end = config.iter().position(|&b| b == 0).unwrap_or(config.len());
    Ok((Position { epoch: info.epoch, step: info.step, attack_step: info.attack_step },
        String::from_utf8_lossy(&config[..end]).into_owned()))
}
