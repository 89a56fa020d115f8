//! Models: presets, the builder, forward, loss + backward, input gradients.
use std::any::Any;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::tensor::opt_ptr;
use crate::{check, cstring, invalid, sys, Context, LayerSpec, ModelOptions, Result, Tensor};

/// A model. `'c` is its context. Its flat parameter, gradient and buffer
/// tensors are lent out by `params` / `grads` / `buffers` while the model is
/// borrowed mutably.
pub struct Model<'c> {
    raw: *mut sys::dat_model,
    _ctx: PhantomData<&'c Context>,
}

/// One parameter tensor of the flat buffer (dat_segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its state_dict name, e.g. "layer1.0.conv1.weight".
    pub name: String,
    /// Its first element in the flat buffer.
    pub offset: i64,
    /// Its number of elements.
    pub length: i64,
    /// What it holds (`sys::DAT_SEGMENT_WEIGHT` ...).
    pub kind: sys::dat_segment_kind,
}

/// The objective of `Model::loss_backward` (dat_loss_options):
/// adv_weight·CE(f(x), y) + clean_weight·CE(f(x_clean), y) + kl_weight·KL.
/// `'a` is the borrow of its tensors, `'b` the lifetime of the `loss_sum`
/// tensor (apart, as the mutable borrow fixes it).
pub struct Loss<'a, 'b> {
    /// Weight of the cross-entropy on x; default 1.
    pub adv_weight: f32,
    /// Weight of the cross-entropy on `x_clean`; default 0.
    pub clean_weight: f32,
    /// Weight of KL(p(x_clean) || p(x)) (TRADES); default 0.
    pub kl_weight: f32,
    /// The clean inputs, shaped as x; needed by `clean_weight` and `kl_weight`.
    pub x_clean: Option<&'a Tensor<'a>>,
    /// Float32 `[N]` weights of the cross-entropy terms.
    pub sample_weights: Option<&'a Tensor<'a>>,
    /// Reduction over the batch; default `sys::DAT_REDUCE_MEAN`.
    pub reduction: sys::dat_reduction,
    /// Adds the gradient to the gradient buffer instead of overwriting it.
    pub accumulate: bool,
    /// A float32 tensor of one element the loss is added to on the device
    /// (nothing read back; what a recorded step uses). Borrowed mutably since
    /// libdat writes it: no view of it ([`Tensor::as_slice`]) may live meanwhile.
    pub loss_sum: Option<&'a mut Tensor<'b>>,
}

impl Default for Loss<'_, '_> {
    fn default() -> Self {
        let o = sys::dat_loss_options::default();
        Loss {
            adv_weight: o.adv_weight,
            clean_weight: o.clean_weight,
            kl_weight: o.kl_weight,
            x_clean: None,
            sample_weights: None,
            reduction: o.reduction,
            accumulate: o.accumulate != 0,
            loss_sum: None,
        }
    }
}

impl<'c> Model<'c> {
    /// A preset: "mlp", "cnn_small", "preact_resnet18", "wrn_28_10", "resnet50"
    /// (dat_model_create_preset).
    pub fn preset(ctx: &'c Context, name: &str, opts: &ModelOptions) -> Result<Model<'c>> {
        let name = cstring(name)?;
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::dat_model_create_preset(&mut raw, ctx.as_ptr(), name.as_ptr(), opts)
        })?;
        Ok(Model { raw, _ctx: PhantomData })
    }

    /// The C handle, owned by this `Model`.
    pub fn as_ptr(&self) -> *mut sys::dat_model {
        self.raw
    }

    /// Sets train or eval mode for batch norm; new models are in train mode
    /// (dat_model_set_mode).
    pub fn set_mode(&mut self, mode: sys::dat_model_mode) -> Result<()> {
        check(unsafe { sys::dat_model_set_mode(self.raw, mode) })
    }

    /// The current mode, `sys::DAT_MODE_TRAIN` or `sys::DAT_MODE_EVAL`
    /// (dat_model_mode_get).
    pub fn mode(&self) -> Result<sys::dat_model_mode> {
        let mut m = 0;
        check(unsafe { sys::dat_model_mode_get(self.raw, &mut m) })?;
        Ok(m)
    }

    /// (channels, height, width, classes).
    pub fn shape(&self) -> Result<(i32, i32, i32, i32)> {
        let (mut c, mut h, mut w, mut k) = (0, 0, 0, 0);
        check(unsafe { sys::dat_model_shape(self.raw, &mut c, &mut h, &mut w, &mut k) })?;
        Ok((c, h, w, k))
    }

    /// Forward pass: `logits` [N, classes] of the inputs `x` [N, C, H, W] in
    /// pixel space (dat_model_forward). In train mode it updates the running
    /// statistics.
    pub fn forward(&mut self, x: &Tensor, logits: &mut Tensor) -> Result<()> {
        check(unsafe { sys::dat_model_forward(self.raw, x.as_ptr(), logits.as_ptr()) })
    }

    /// The loss and its gradient into the flat gradient buffer; returns the loss.
    pub fn loss_backward(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss) -> Result<f32> {
        let mut value = 0.0;
        self.loss_backward_into(x, y, loss, &mut value)?;
        Ok(value)
    }

    /// As [`Model::loss_backward`] without reading the loss back (it can go to
    /// [`Loss::loss_sum`]): the form a recorded step
    /// ([`Context::record`](crate::Context::record)) takes.
    pub fn loss_backward_on_device(&mut self, x: &Tensor, y: Option<&Tensor>,
                                   loss: &Loss) -> Result<()> {
        self.loss_backward_into(x, y, loss, std::ptr::null_mut())
    }

    fn loss_backward_into(&mut self, x: &Tensor, y: Option<&Tensor>, loss: &Loss,
                          value: *mut f32) -> Result<()> {
        let mut o = sys::dat_loss_options::default();
        o.adv_weight = loss.adv_weight;
        o.clean_weight = loss.clean_weight;
        o.kl_weight = loss.kl_weight;
        o.x_clean = opt_ptr(loss.x_clean);
        o.sample_weights = opt_ptr(loss.sample_weights);
        o.reduction = loss.reduction;
        o.accumulate = loss.accumulate as i32;
        // Written through a shared borrow of `loss`, sound as `loss` holds the
        // only (mutable) borrow of that tensor.
        o.loss_sum = opt_ptr(loss.loss_sum.as_deref());
        check(unsafe { sys::dat_model_loss_backward(self.raw, x.as_ptr(), opt_ptr(y), &o, value) })
    }

    /// Gradient of the summed cross-entropy w.r.t. the input only; returns the loss.
    pub fn input_grad(&mut self, x: &Tensor, y: &Tensor, dx: &mut Tensor) -> Result<f32> {
        let o = sys::dat_input_grad_options::default();
        let mut value = 0.0;
        check(unsafe {
            sys::dat_model_input_grad(self.raw, x.as_ptr(), y.as_ptr(), &o, dx.as_ptr(),
                                      &mut value)
        })?;
        Ok(value)
    }

    /// dat_model_input_grad with all its options.
    ///
    /// # Safety
    /// The tensors `opts` points to must be alive and not aliased by `dx`.
    pub unsafe fn input_grad_with(&mut self, x: &Tensor, y: Option<&Tensor>,
                                  opts: &sys::dat_input_grad_options, dx: &mut Tensor)
                                  -> Result<f32> {
        let mut value = 0.0;
        check(sys::dat_model_input_grad(self.raw, x.as_ptr(), opt_ptr(y), opts, dx.as_ptr(),
                                        &mut value))?;
        Ok(value)
    }

    fn flat(&self, f: unsafe extern "C" fn(*mut sys::dat_model, *mut *mut sys::dat_tensor)
                                           -> sys::dat_status) -> Result<*mut sys::dat_tensor> {
        let mut t = ptr::null_mut();
        check(unsafe { f(self.raw, &mut t) })?;
        Ok(t)
    }

    /// The flat parameter buffer (float32), owned by the model.
    pub fn params(&mut self) -> Result<Tensor<'_>> {
        Ok(Tensor::borrowed(self.flat(sys::dat_model_params)?))
    }

    /// The flat gradient buffer, laid out as the parameters.
    pub fn grads(&mut self) -> Result<Tensor<'_>> {
        Ok(Tensor::borrowed(self.flat(sys::dat_model_grads)?))
    }

    /// The batch-norm running statistics, or None for a model without batch norm.
    pub fn buffers(&mut self) -> Result<Option<Tensor<'_>>> {
        let t = self.flat(sys::dat_model_buffers)?;
        Ok(if t.is_null() { None } else { Some(Tensor::borrowed(t)) })
    }

    /// A copy of the parameters.
    pub fn params_to_vec(&self) -> Result<Vec<f32>> {
        Tensor::borrowed(self.flat(sys::dat_model_params)?).to_vec()
    }

    /// The parameter segments, in buffer order (dat_model_num_segments,
    /// dat_model_segment).
    pub fn segments(&self) -> Result<Vec<Segment>> {
        let mut n = 0;
        check(unsafe { sys::dat_model_num_segments(self.raw, &mut n) })?;
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut s = sys::dat_segment::default();
            check(unsafe { sys::dat_model_segment(self.raw, i, &mut s) })?;
            let name = unsafe { CStr::from_ptr(s.name) }.to_string_lossy().into_owned();
            out.push(Segment { name, offset: s.offset, length: s.length, kind: s.kind });
        }
        Ok(out)
    }

    /// Writes the state_dict as safetensors (PyTorch names), atomically.
    pub fn save(&self, path: &str) -> Result<()> {
        let p = cstring(path)?;
        check(unsafe { sys::dat_model_save(self.raw, p.as_ptr()) })
    }

    /// Loads a state_dict (all or nothing).
    pub fn load(&mut self, path: &str, ignore_unexpected: bool) -> Result<()> {
        self.load_with(path, ignore_unexpected, sys::DAT_REINIT_HEAD_NEVER, None)
    }

    /// Loads a state_dict, keeping the model's own classifier as `reinit_head`
    /// says (transfer learning); `on_tensor(name, loaded)` is called for every
    /// tensor after a successful load.
    pub fn load_with(&mut self, path: &str, ignore_unexpected: bool,
                     reinit_head: sys::dat_reinit_head,
                     on_tensor: Option<&mut dyn FnMut(&str, bool)>) -> Result<()> {
        // What libdat passes back to `relay` as `user`.
        struct Report<'f> {
            on_tensor: &'f mut dyn FnMut(&str, bool),
            // A panic of `on_tensor`, caught in `relay`: it must not unwind
            // through dat_model_load's C frames; raised again once it returns.
            panic: Option<Box<dyn Any + Send>>,
        }
        unsafe extern "C" fn relay(name: *const c_char, loaded: i32, user: *mut c_void) {
            // Safety: user is the Report below, alive and not otherwise used
            // during dat_model_load; name is a NUL-terminated string.
            let report = &mut *(user as *mut Report);
            if report.panic.is_some() {
                return; // on_tensor has no way to stop the C loop: skip the rest
            }
            let f = &mut *report.on_tensor;
            let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                f(&CStr::from_ptr(name).to_string_lossy(), loaded != 0)
            }));
            report.panic = ran.err();
        }
        let p = cstring(path)?;
        let mut o = sys::dat_model_load_options::default();
        o.ignore_unexpected = ignore_unexpected as i32;
        o.reinit_head = reinit_head;
        let mut report = on_tensor.map(|on_tensor| Report { on_tensor, panic: None });
        if let Some(r) = report.as_mut() {
            o.on_tensor = Some(relay);
            o.user = r as *mut Report as *mut c_void;
        }
        let status = unsafe { sys::dat_model_load(self.raw, p.as_ptr(), &o) };
        // The load is complete (on_tensor runs after a successful one).
        if let Some(payload) = report.and_then(|r| r.panic) {
            panic::resume_unwind(payload);
        }
        check(status)
    }

    /// Layers with parameters (PyTorch modules); the last one is the classifier.
    pub fn num_layers(&self) -> Result<i32> {
        let mut n = 0;
        check(unsafe { sys::dat_model_num_layers(self.raw, &mut n) })?;
        Ok(n)
    }

    /// (first segment, number of segments) of a layer.
    pub fn layer_segments(&self, layer: i32) -> Result<(i32, i32)> {
        let (mut first, mut count) = (0, 0);
        check(unsafe { sys::dat_model_layer_segments(self.raw, layer, &mut first, &mut count) })?;
        Ok((first, count))
    }

    /// Number of nodes of the model's graph; node 0 is the input
    /// (dat_model_num_nodes).
    pub fn num_nodes(&self) -> Result<i32> {
        let mut n = 0;
        check(unsafe { sys::dat_model_num_nodes(self.raw, &mut n) })?;
        Ok(n)
    }

    /// (kind, channels, height, width) of a node; kind -1 for the input.
    pub fn node_info(&self, node: i32) -> Result<(i32, i32, i32, i32)> {
        let (mut k, mut c, mut h, mut w) = (0, 0, 0, 0);
        check(unsafe { sys::dat_model_node_info(self.raw, node, &mut k, &mut c, &mut h, &mut w) })?;
        Ok((k, c, h, w))
    }

    /// Copies a node's output of the last forward pass into `out`.
    pub fn activation(&mut self, node: i32, out: &mut Tensor) -> Result<()> {
        check(unsafe { sys::dat_model_activation(self.raw, node, out.as_ptr()) })
    }
}

impl Drop for Model<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_model_destroy(self.raw) }
    }
}

/// Builds a model layer by layer; the input is node 0.
pub struct ModelBuilder<'c> {
    raw: *mut sys::dat_model_builder,
    channels: i32,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> ModelBuilder<'c> {
    /// Starts a model whose input samples are [channels, height, width]
    /// (dat_model_builder_create).
    pub fn new(ctx: &'c Context, channels: i32, height: i32, width: i32) -> Result<Self> {
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::dat_model_builder_create(&mut raw, ctx.as_ptr(), channels, height, width)
        })?;
        Ok(ModelBuilder { raw, channels, _ctx: PhantomData })
    }

    /// Per-channel (x - mean) / std inside the model: one value per input
    /// channel in each (else `DAT_ERR_INVALID_ARG`: libdat reads that many).
    pub fn set_normalization(&mut self, mean: &[f32], std: &[f32]) -> Result<()> {
        let channels = self.channels as usize;
        if mean.len() != channels || std.len() != channels {
            return Err(invalid(&format!("ModelBuilder::set_normalization: mean and std need \
                                         one value per input channel ({}); got {} and {}",
                                        channels, mean.len(), std.len())));
        }
        check(unsafe {
            sys::dat_model_builder_set_normalization(self.raw, mean.as_ptr(), std.as_ptr())
        })
    }

    /// The default spec of a layer kind (dat_layer_spec_init_sized).
    pub fn spec(kind: sys::dat_layer_kind) -> Result<LayerSpec> {
        let mut s: LayerSpec = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<LayerSpec>();
        check(unsafe { sys::dat_layer_spec_init_sized(&mut s, kind, size) })?;
        Ok(s)
    }

    /// Appends a layer named `name` (its state_dict prefix) fed by `input`
    /// (and `input2` for an ADD, else -1); returns its node.
    pub fn add(&mut self, spec: &LayerSpec, name: Option<&str>, input: i32, input2: i32)
               -> Result<i32> {
        let name = match name {
            Some(n) => Some(cstring(n)?),
            None => None,
        };
        let mut s = *spec;
        s.name = name.as_ref().map(|n| n.as_ptr()).unwrap_or(ptr::null());
        let mut node = 0;
        check(unsafe { sys::dat_model_builder_add(self.raw, &s, input, input2, &mut node) })?;
        Ok(node)
    }

    /// The model whose logits are node `output`.
    pub fn finish(&mut self, output: i32, init_seed: u64) -> Result<Model<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_model_builder_finish(self.raw, output, init_seed, &mut raw) })?;
        Ok(Model { raw, _ctx: PhantomData })
    }
}

impl Drop for ModelBuilder<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_model_builder_destroy(self.raw) }
    }
}
