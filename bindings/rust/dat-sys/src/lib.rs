//! Raw declarations of the libdat C API, one for one with include/libdat/*.h
//! (the test tests/python/test_rust_sys.py compares every function, argument
//! and struct field with the headers). Enums are `i32` type aliases with their
//! values as constants; handles are opaque structs used through pointers. The
//! option structs implement `Default` through their `*_options_init` function,
//! and the structs whose size the caller sets get it in `Default`.
//!
//! Everything here is `unsafe`; the `dat` crate wraps it safely. Ownership,
//! statuses and parameters are documented on the C declarations (docs/api).
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

pub const DAT_VERSION_MAJOR: u32 = 0;
pub const DAT_VERSION_MINOR: u32 = 7;
pub const DAT_VERSION_PATCH: u32 = 0;
pub const DAT_VERSION_NUMBER: u32 =
    DAT_VERSION_MAJOR * 10000 + DAT_VERSION_MINOR * 100 + DAT_VERSION_PATCH;
pub const DAT_TENSOR_MAX_DIMS: usize = 8;
pub const DAT_OPTIM_MAX_MILESTONES: usize = 16;
pub const DAT_OPTIM_MAX_STEP: i64 = 1 << 53;
pub const DAT_QUANT_DEFAULT_BUCKET: i32 = 512;
pub const DAT_QUANT_MAX_BUCKET: i32 = 1 << 24;
pub const DAT_DATASET_DEFAULT_BATCH: i32 = 128;
pub const DAT_COMM_DEFAULT_TIMEOUT: f64 = 60.0;

/// Open MPI's `MPI_Comm` (a pointer); get MPI_COMM_WORLD from your MPI binding.
#[cfg(feature = "mpi")]
pub type MPI_Comm = *mut c_void;

// ---- include/libdat/dat_common.h ----

pub type dat_status = i32;
pub const DAT_OK: dat_status = 0;
pub const DAT_ERR_INVALID_ARG: dat_status = 1;
pub const DAT_ERR_OUT_OF_MEMORY: dat_status = 2;
pub const DAT_ERR_NO_DEVICE: dat_status = 3;
pub const DAT_ERR_UNSUPPORTED: dat_status = 4;
pub const DAT_ERR_IO: dat_status = 5;
pub const DAT_ERR_FORMAT: dat_status = 6;
pub const DAT_ERR_NUMERIC: dat_status = 7;
pub const DAT_ERR_CUDA: dat_status = 8;
pub const DAT_ERR_COMM: dat_status = 9;
pub const DAT_ERR_TIMEOUT: dat_status = 10;
pub const DAT_ERR_STATE: dat_status = 11;
pub const DAT_ERR_INTERNAL: dat_status = 12;
pub const DAT_STATUS_FORCE_32BIT: dat_status = 0x7fffffff;

pub type dat_log_level = i32;
pub const DAT_LOG_ERROR: dat_log_level = 0;
pub const DAT_LOG_WARN: dat_log_level = 1;
pub const DAT_LOG_INFO: dat_log_level = 2;
pub const DAT_LOG_DEBUG: dat_log_level = 3;
pub const DAT_LOG_LEVEL_FORCE_32BIT: dat_log_level = 0x7fffffff;

pub type dat_reduction = i32;
pub const DAT_REDUCE_MEAN: dat_reduction = 0;
pub const DAT_REDUCE_SUM: dat_reduction = 1;
pub const DAT_REDUCTION_FORCE_32BIT: dat_reduction = 0x7fffffff;

pub type dat_dtype = i32;
pub const DAT_FLOAT32: dat_dtype = 0;
pub const DAT_BFLOAT16: dat_dtype = 1;
pub const DAT_INT32: dat_dtype = 2;
pub const DAT_UINT8: dat_dtype = 3;
pub const DAT_DTYPE_FORCE_32BIT: dat_dtype = 0x7fffffff;

pub type dat_log_fn =
    Option<unsafe extern "C" fn(level: dat_log_level, message: *const c_char, user: *mut c_void)>;

extern "C" {
    pub fn dat_status_string(status: dat_status) -> *const c_char;
    pub fn dat_last_error() -> *const c_char;
    pub fn dat_clear_error();
    pub fn dat_version() -> u32;
    pub fn dat_version_string() -> *const c_char;
    pub fn dat_dtype_size(dtype: dat_dtype) -> usize;
    pub fn dat_dtype_name(dtype: dat_dtype) -> *const c_char;
}

// ---- include/libdat/dat_ctx.h ----

pub type dat_device_kind = i32;
pub const DAT_DEVICE_CPU: dat_device_kind = 0;
pub const DAT_DEVICE_CUDA: dat_device_kind = 1;
pub type dat_precision = i32;
pub const DAT_PRECISION_FP32: dat_precision = 0;
pub const DAT_PRECISION_TF32: dat_precision = 1;
pub const DAT_PRECISION_BF16: dat_precision = 2;
pub const DAT_PRECISION_FORCE_32BIT: dat_precision = 0x7fffffff;
pub const DAT_DEVICE_FORCE_32BIT: dat_device_kind = 0x7fffffff;

#[repr(C)]
pub struct dat_ctx {
    _private: [u8; 0],
}

#[repr(C)]
pub struct dat_step_graph {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_ctx_options {
    pub size: u32,
    pub device: dat_device_kind,
    pub device_ordinal: i32,
    pub num_threads: i32,
    pub seed: u64,
    pub log_fn: dat_log_fn,
    pub log_user: *mut c_void,
    pub log_level: dat_log_level,
    pub precision: dat_precision,
    pub tune_convolutions: i32,
    pub reserved0: i32,
    pub cuda_graphs: i32,
    pub channels_last: i32,
    pub deterministic: i32,
}

extern "C" {
    pub fn dat_ctx_options_init(opts: *mut dat_ctx_options) -> dat_status;
    pub fn dat_ctx_options_init_sized(opts: *mut dat_ctx_options, size: usize) -> dat_status;
    pub fn dat_ctx_create(out: *mut *mut dat_ctx, opts: *const dat_ctx_options) -> dat_status;
    pub fn dat_ctx_destroy(ctx: *mut dat_ctx);
    pub fn dat_ctx_synchronize(ctx: *mut dat_ctx) -> dat_status;
    pub fn dat_ctx_device(ctx: *const dat_ctx, kind: *mut dat_device_kind, ordinal: *mut i32) -> dat_status;
    pub fn dat_ctx_num_threads(ctx: *const dat_ctx, num_threads: *mut i32) -> dat_status;
    pub fn dat_ctx_seed(ctx: *const dat_ctx, seed: *mut u64) -> dat_status;
    pub fn dat_has_cuda() -> c_int;
    pub fn dat_cuda_device_count(count: *mut i32) -> dat_status;
    pub fn dat_capture_begin(ctx: *mut dat_ctx) -> dat_status;
    pub fn dat_capture_end(ctx: *mut dat_ctx, out: *mut *mut dat_step_graph) -> dat_status;
    pub fn dat_step_graph_launch(graph: *mut dat_step_graph) -> dat_status;
    pub fn dat_step_graph_destroy(graph: *mut dat_step_graph);
}

// ---- include/libdat/dat_tensor.h ----

#[repr(C)]
pub struct dat_tensor {
    _private: [u8; 0],
}

extern "C" {
    pub fn dat_tensor_create(out: *mut *mut dat_tensor, ctx: *mut dat_ctx, dtype: dat_dtype, ndim: i32, shape: *const i64) -> dat_status;
    pub fn dat_tensor_destroy(tensor: *mut dat_tensor);
    pub fn dat_tensor_shape(tensor: *const dat_tensor, ndim: *mut i32, shape: *mut i64) -> dat_status;
    pub fn dat_tensor_dtype(tensor: *const dat_tensor, dtype: *mut dat_dtype) -> dat_status;
    pub fn dat_tensor_numel(tensor: *const dat_tensor, numel: *mut i64) -> dat_status;
    pub fn dat_tensor_nbytes(tensor: *const dat_tensor, nbytes: *mut usize) -> dat_status;
    pub fn dat_tensor_reshape(tensor: *mut dat_tensor, ndim: i32, shape: *const i64) -> dat_status;
    pub fn dat_tensor_host_data(tensor: *mut dat_tensor, data: *mut *mut c_void) -> dat_status;
    pub fn dat_tensor_write(tensor: *mut dat_tensor, src: *const c_void, nbytes: usize) -> dat_status;
    pub fn dat_tensor_read(tensor: *const dat_tensor, dst: *mut c_void, nbytes: usize) -> dat_status;
    pub fn dat_tensor_copy(dst: *mut dat_tensor, src: *const dat_tensor) -> dat_status;
    pub fn dat_tensor_fill(tensor: *mut dat_tensor, value: f64) -> dat_status;
    pub fn dat_tensor_fill_uniform(tensor: *mut dat_tensor, low: f32, high: f32, stream: u64, offset: u64) -> dat_status;
    pub fn dat_tensor_fill_normal(tensor: *mut dat_tensor, mean: f32, std: f32, stream: u64, offset: u64) -> dat_status;
}

// ---- include/libdat/dat_segment.h ----

pub type dat_segment_kind = i32;
pub const DAT_SEGMENT_WEIGHT: dat_segment_kind = 0;
pub const DAT_SEGMENT_BIAS: dat_segment_kind = 1;
pub const DAT_SEGMENT_BN_WEIGHT: dat_segment_kind = 2;
pub const DAT_SEGMENT_BN_BIAS: dat_segment_kind = 3;
pub const DAT_SEGMENT_KIND_FORCE_32BIT: dat_segment_kind = 0x7fffffff;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_segment {
    pub size: u32,
    pub name: *const c_char,
    pub offset: i64,
    pub length: i64,
    pub kind: dat_segment_kind,
}


// ---- include/libdat/dat_model.h ----

pub type dat_model_mode = i32;
pub const DAT_MODE_TRAIN: dat_model_mode = 0;
pub const DAT_MODE_EVAL: dat_model_mode = 1;
pub const DAT_MODE_FORCE_32BIT: dat_model_mode = 0x7fffffff;

pub type dat_layer_kind = i32;
pub const DAT_LAYER_CONV2D: dat_layer_kind = 0;
pub const DAT_LAYER_LINEAR: dat_layer_kind = 1;
pub const DAT_LAYER_BATCHNORM: dat_layer_kind = 2;
pub const DAT_LAYER_RELU: dat_layer_kind = 3;
pub const DAT_LAYER_MAXPOOL: dat_layer_kind = 4;
pub const DAT_LAYER_AVGPOOL: dat_layer_kind = 5;
pub const DAT_LAYER_GLOBAL_AVGPOOL: dat_layer_kind = 6;
pub const DAT_LAYER_FLATTEN: dat_layer_kind = 7;
pub const DAT_LAYER_ADD: dat_layer_kind = 8;
pub const DAT_LAYER_KIND_FORCE_32BIT: dat_layer_kind = 0x7fffffff;

pub type dat_reinit_head = i32;
pub const DAT_REINIT_HEAD_NEVER: dat_reinit_head = 0;
pub const DAT_REINIT_HEAD_IF_MISMATCHED: dat_reinit_head = 1;
pub const DAT_REINIT_HEAD_ALWAYS: dat_reinit_head = 2;
pub const DAT_REINIT_HEAD_FORCE_32BIT: dat_reinit_head = 0x7fffffff;

pub type dat_objective = i32;
pub const DAT_OBJECTIVE_CE: dat_objective = 0;
pub const DAT_OBJECTIVE_KL: dat_objective = 1;
pub const DAT_OBJECTIVE_FORCE_32BIT: dat_objective = 0x7fffffff;

#[repr(C)]
pub struct dat_model {
    _private: [u8; 0],
}

#[repr(C)]
pub struct dat_model_builder {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_layer_spec {
    pub size: u32,
    pub kind: dat_layer_kind,
    pub name: *const c_char,
    pub out_features: i32,
    pub kernel: i32,
    pub stride: i32,
    pub padding: i32,
    pub bias: i32,
    pub bn_eps: f32,
    pub bn_momentum: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_model_options {
    pub size: u32,
    pub num_classes: i32,
    pub in_channels: i32,
    pub in_height: i32,
    pub in_width: i32,
    pub mean: *const f32,
    pub std: *const f32,
    pub init_seed: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_loss_options {
    pub size: u32,
    pub adv_weight: f32,
    pub clean_weight: f32,
    pub kl_weight: f32,
    pub x_clean: *const dat_tensor,
    pub sample_weights: *const dat_tensor,
    pub reduction: dat_reduction,
    pub accumulate: i32,
    pub loss_sum: *mut dat_tensor,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_input_grad_options {
    pub size: u32,
    pub objective: dat_objective,
    pub target_logits: *const dat_tensor,
    pub reduction: dat_reduction,
    pub sample_losses: *mut dat_tensor,
    pub logits: *mut dat_tensor,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_model_load_options {
    pub size: u32,
    pub ignore_unexpected: i32,
    pub reinit_head: dat_reinit_head,
    pub on_tensor: Option<unsafe extern "C" fn(name: *const c_char, loaded: i32, user: *mut c_void)>,
    pub user: *mut c_void,
}

extern "C" {
    pub fn dat_layer_spec_init(spec: *mut dat_layer_spec, kind: dat_layer_kind) -> dat_status;
    pub fn dat_layer_spec_init_sized(
        spec: *mut dat_layer_spec, kind: dat_layer_kind,
        size: usize,
    ) -> dat_status;
    pub fn dat_model_builder_create(out: *mut *mut dat_model_builder, ctx: *mut dat_ctx, channels: i32, height: i32, width: i32) -> dat_status;
    pub fn dat_model_builder_destroy(builder: *mut dat_model_builder);
    pub fn dat_model_builder_set_normalization(builder: *mut dat_model_builder, mean: *const f32, std: *const f32) -> dat_status;
    pub fn dat_model_builder_add(builder: *mut dat_model_builder, spec: *const dat_layer_spec, input: i32, input2: i32, node: *mut i32) -> dat_status;
    pub fn dat_model_builder_finish(builder: *mut dat_model_builder, output: i32, init_seed: u64, out: *mut *mut dat_model) -> dat_status;
    pub fn dat_model_options_init(opts: *mut dat_model_options) -> dat_status;
    pub fn dat_model_options_init_sized(opts: *mut dat_model_options, size: usize) -> dat_status;
    pub fn dat_model_create_preset(out: *mut *mut dat_model, ctx: *mut dat_ctx, preset: *const c_char, opts: *const dat_model_options) -> dat_status;
    pub fn dat_model_destroy(model: *mut dat_model);
    pub fn dat_model_set_mode(model: *mut dat_model, mode: dat_model_mode) -> dat_status;
    pub fn dat_model_mode_get(model: *const dat_model, mode: *mut dat_model_mode) -> dat_status;
    pub fn dat_model_shape(model: *const dat_model, channels: *mut i32, height: *mut i32, width: *mut i32, num_classes: *mut i32) -> dat_status;
    pub fn dat_model_forward(model: *mut dat_model, x: *const dat_tensor, logits: *mut dat_tensor) -> dat_status;
    pub fn dat_loss_options_init(opts: *mut dat_loss_options) -> dat_status;
    pub fn dat_loss_options_init_sized(opts: *mut dat_loss_options, size: usize) -> dat_status;
    pub fn dat_model_loss_backward(model: *mut dat_model, x: *const dat_tensor, y: *const dat_tensor, opts: *const dat_loss_options, loss: *mut f32) -> dat_status;
    pub fn dat_input_grad_options_init(opts: *mut dat_input_grad_options) -> dat_status;
    pub fn dat_input_grad_options_init_sized(
        opts: *mut dat_input_grad_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_model_input_grad(model: *mut dat_model, x: *const dat_tensor, y: *const dat_tensor, opts: *const dat_input_grad_options, dx: *mut dat_tensor, loss: *mut f32) -> dat_status;
    pub fn dat_model_params(model: *mut dat_model, params: *mut *mut dat_tensor) -> dat_status;
    pub fn dat_model_grads(model: *mut dat_model, grads: *mut *mut dat_tensor) -> dat_status;
    pub fn dat_model_buffers(model: *mut dat_model, buffers: *mut *mut dat_tensor) -> dat_status;
    pub fn dat_model_num_segments(model: *const dat_model, count: *mut i32) -> dat_status;
    pub fn dat_model_segment(model: *const dat_model, index: i32, seg: *mut dat_segment) -> dat_status;
    pub fn dat_model_num_layers(model: *const dat_model, count: *mut i32) -> dat_status;
    pub fn dat_model_layer_segments(model: *const dat_model, layer: i32, first_segment: *mut i32, num_segments: *mut i32) -> dat_status;
    pub fn dat_model_save(model: *mut dat_model, path: *const c_char) -> dat_status;
    pub fn dat_model_load_options_init(opts: *mut dat_model_load_options) -> dat_status;
    pub fn dat_model_load_options_init_sized(
        opts: *mut dat_model_load_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_model_load(model: *mut dat_model, path: *const c_char, opts: *const dat_model_load_options) -> dat_status;
    pub fn dat_model_num_nodes(model: *const dat_model, count: *mut i32) -> dat_status;
    pub fn dat_model_node_info(model: *const dat_model, node: i32, kind: *mut i32, channels: *mut i32, height: *mut i32, width: *mut i32) -> dat_status;
    pub fn dat_model_activation(model: *mut dat_model, node: i32, out: *mut dat_tensor) -> dat_status;
}

// ---- include/libdat/dat_attack.h ----

pub type dat_attack_kind = i32;
pub const DAT_ATTACK_PGD: dat_attack_kind = 0;
pub const DAT_ATTACK_FGSM: dat_attack_kind = 1;
pub const DAT_ATTACK_TRADES: dat_attack_kind = 2;
pub const DAT_ATTACK_SMOOTH_PGD: dat_attack_kind = 3;
pub const DAT_ATTACK_KIND_FORCE_32BIT: dat_attack_kind = 0x7fffffff;

pub type dat_norm = i32;
pub const DAT_NORM_LINF: dat_norm = 0;
pub const DAT_NORM_L2: dat_norm = 1;
pub const DAT_NORM_FORCE_32BIT: dat_norm = 0x7fffffff;

#[repr(C)]
pub struct dat_attack {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_attack_options {
    pub size: u32,
    pub kind: dat_attack_kind,
    pub norm: dat_norm,
    pub eps: f32,
    pub alpha: f32,
    pub steps: i32,
    pub random_start: i32,
    pub restarts: i32,
    pub mode: dat_model_mode,
    pub lo: f32,
    pub hi: f32,
    pub sigma: f32,
    pub noise_samples: i32,
    pub seed: u64,
    pub rank: i32,
}

extern "C" {
    pub fn dat_attack_options_init(opts: *mut dat_attack_options) -> dat_status;
    pub fn dat_attack_options_init_sized(opts: *mut dat_attack_options, size: usize) -> dat_status;
    pub fn dat_attack_create(out: *mut *mut dat_attack, ctx: *mut dat_ctx, opts: *const dat_attack_options) -> dat_status;
    pub fn dat_attack_destroy(attack: *mut dat_attack);
    pub fn dat_attack_set_step(attack: *mut dat_attack, step: u64) -> dat_status;
    pub fn dat_attack_get_step(attack: *const dat_attack, step: *mut u64) -> dat_status;
    pub fn dat_attack_perturb(attack: *mut dat_attack, model: *mut dat_model, x: *const dat_tensor, y: *const dat_tensor, x_adv: *mut dat_tensor) -> dat_status;
    pub fn dat_attack_gaussian_copies(attack: *mut dat_attack, x: *const dat_tensor, y: *const dat_tensor, x_out: *mut dat_tensor, y_out: *mut dat_tensor) -> dat_status;
    pub fn dat_eval_robust_accuracy(attack: *mut dat_attack, model: *mut dat_model, x: *const dat_tensor, y: *const dat_tensor, clean_correct: *mut i32, robust_correct: *mut i32, robust_mask: *mut dat_tensor) -> dat_status;
}

// ---- include/libdat/dat_quant.h ----

pub type dat_quant_norm = i32;
pub const DAT_QUANT_NORM_L2: dat_quant_norm = 0;
pub const DAT_QUANT_NORM_MAX: dat_quant_norm = 1;
pub const DAT_QUANT_NORM_FORCE_32BIT: dat_quant_norm = 0x7fffffff;

#[repr(C)]
pub struct dat_quantizer {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_quantizer_options {
    pub size: u32,
    pub bits: i32,
    pub bucket_size: i32,
    pub norm: dat_quant_norm,
    pub rank: i32,
    pub error_feedback: i32,
    pub seed: u64,
}

extern "C" {
    pub fn dat_quantizer_options_init(opts: *mut dat_quantizer_options) -> dat_status;
    pub fn dat_quantizer_options_init_sized(
        opts: *mut dat_quantizer_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_quantizer_create(out: *mut *mut dat_quantizer, ctx: *mut dat_ctx, opts: *const dat_quantizer_options) -> dat_status;
    pub fn dat_quantizer_destroy(q: *mut dat_quantizer);
    pub fn dat_quantizer_options_get(q: *const dat_quantizer, opts: *mut dat_quantizer_options) -> dat_status;
    pub fn dat_quantizer_encoded_size(q: *const dat_quantizer, n: i64, bytes: *mut usize) -> dat_status;
    pub fn dat_quantizer_encode(q: *mut dat_quantizer, x: *const dat_tensor, step: u64, codes: *mut c_void, codes_bytes: usize) -> dat_status;
    pub fn dat_quantizer_decode(q: *mut dat_quantizer, codes: *const c_void, codes_bytes: usize, out: *mut dat_tensor, accumulate: c_int) -> dat_status;
    pub fn dat_quantizer_reset(q: *mut dat_quantizer) -> dat_status;
}

// ---- include/libdat/dat_comm.h ----

pub type dat_quant_mode = i32;
pub const DAT_QUANT_ONE_SIDED: dat_quant_mode = 0;
pub const DAT_QUANT_TWO_SIDED: dat_quant_mode = 1;
pub const DAT_QUANT_MODE_FORCE_32BIT: dat_quant_mode = 0x7fffffff;

#[repr(C)]
pub struct dat_comm {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_comm_options {
    pub size: u32,
    pub timeout_s: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_comm_stats {
    pub size: u32,
    pub calls: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_comm_id {
    pub internal: [u8; 128],
}

#[repr(C)]
pub struct dat_grad_sync {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_grad_sync_options {
    pub size: u32,
    pub bucket_elems: i64,
    pub quantizer: *mut dat_quantizer,
    pub mode: dat_quant_mode,
}

extern "C" {
    pub fn dat_comm_options_init(opts: *mut dat_comm_options) -> dat_status;
    pub fn dat_comm_options_init_sized(opts: *mut dat_comm_options, size: usize) -> dat_status;
    pub fn dat_comm_create_self(out: *mut *mut dat_comm, ctx: *mut dat_ctx) -> dat_status;
    pub fn dat_comm_destroy(comm: *mut dat_comm);
    pub fn dat_comm_rank(comm: *const dat_comm, rank: *mut i32) -> dat_status;
    pub fn dat_comm_size(comm: *const dat_comm, size: *mut i32) -> dat_status;
    pub fn dat_comm_allreduce(comm: *mut dat_comm, t: *mut dat_tensor, op: dat_reduction) -> dat_status;
    pub fn dat_comm_broadcast(comm: *mut dat_comm, t: *mut dat_tensor, root: i32) -> dat_status;
    pub fn dat_comm_allgather(comm: *mut dat_comm, r#in: *const dat_tensor, out: *mut dat_tensor) -> dat_status;
    pub fn dat_comm_allreduce_quantized(comm: *mut dat_comm, t: *mut dat_tensor, q: *mut dat_quantizer, mode: dat_quant_mode, step: u64) -> dat_status;
    pub fn dat_comm_allreduce_grads(comm: *mut dat_comm, model: *mut dat_model, q: *mut dat_quantizer, mode: dat_quant_mode, step: u64) -> dat_status;
    pub fn dat_comm_broadcast_model(comm: *mut dat_comm, model: *mut dat_model, root: i32) -> dat_status;
    pub fn dat_grad_sync_options_init(opts: *mut dat_grad_sync_options) -> dat_status;
    pub fn dat_grad_sync_options_init_sized(
        opts: *mut dat_grad_sync_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_grad_sync_create(out: *mut *mut dat_grad_sync, comm: *mut dat_comm, model: *mut dat_model, opts: *const dat_grad_sync_options) -> dat_status;
    pub fn dat_grad_sync_destroy(sync: *mut dat_grad_sync);
    pub fn dat_grad_sync_begin(sync: *mut dat_grad_sync, step: u64) -> dat_status;
    pub fn dat_grad_sync_end(sync: *mut dat_grad_sync) -> dat_status;
    pub fn dat_grad_sync_overlaps(sync: *const dat_grad_sync, overlaps: *mut i32) -> dat_status;
    pub fn dat_comm_get_stats(comm: *const dat_comm, stats: *mut dat_comm_stats) -> dat_status;
    pub fn dat_comm_reset_stats(comm: *mut dat_comm) -> dat_status;
    pub fn dat_comm_abort(comm: *mut dat_comm) -> dat_status;
    pub fn dat_comm_unique_id(id: *mut dat_comm_id) -> dat_status;
    pub fn dat_comm_create_nccl(out: *mut *mut dat_comm, ctx: *mut dat_ctx, nranks: i32, rank: i32, id: *const dat_comm_id, opts: *const dat_comm_options) -> dat_status;
    pub fn dat_comm_unique_id_write(id: *const dat_comm_id, path: *const c_char) -> dat_status;
    pub fn dat_comm_unique_id_read(id: *mut dat_comm_id, path: *const c_char, timeout_s: f64) -> dat_status;
}

// ---- include/libdat/dat_optim.h ----

pub type dat_optim_kind = i32;
pub const DAT_OPTIM_SGD: dat_optim_kind = 0;
pub const DAT_OPTIM_MOMENTUM: dat_optim_kind = 1;
pub const DAT_OPTIM_NESTEROV: dat_optim_kind = 2;
pub const DAT_OPTIM_ADAM: dat_optim_kind = 3;
pub const DAT_OPTIM_ADAMW: dat_optim_kind = 4;
pub const DAT_OPTIM_KIND_FORCE_32BIT: dat_optim_kind = 0x7fffffff;

pub type dat_schedule_kind = i32;
pub const DAT_SCHEDULE_CONSTANT: dat_schedule_kind = 0;
pub const DAT_SCHEDULE_PIECEWISE: dat_schedule_kind = 1;
pub const DAT_SCHEDULE_COSINE: dat_schedule_kind = 2;
pub const DAT_SCHEDULE_ONECYCLE: dat_schedule_kind = 3;
pub const DAT_SCHEDULE_FORCE_32BIT: dat_schedule_kind = 0x7fffffff;

pub type dat_lr_scaling = i32;
pub const DAT_LR_SCALING_NONE: dat_lr_scaling = 0;
pub const DAT_LR_SCALING_LINEAR: dat_lr_scaling = 1;
pub const DAT_LR_SCALING_SQRT: dat_lr_scaling = 2;
pub const DAT_LR_SCALING_FORCE_32BIT: dat_lr_scaling = 0x7fffffff;

#[repr(C)]
pub struct dat_optim {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_optim_options {
    pub size: u32,
    pub kind: dat_optim_kind,
    pub lr: f32,
    pub momentum: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled_decay: i32,
    pub bias_correction: i32,
    pub lalr: i32,
    pub c_l: f32,
    pub c_u: f32,
    pub exclude_bias_bn_decay: i32,
    pub exclude_bias_bn_lalr: i32,
    pub schedule: dat_schedule_kind,
    pub warmup_steps: i64,
    pub total_steps: i64,
    pub num_milestones: i32,
    pub milestones: [i64; 16],
    pub gamma: f32,
    pub scaling: dat_lr_scaling,
    pub global_batch: i64,
    pub ref_batch: i64,
}

extern "C" {
    pub fn dat_optim_options_init(opts: *mut dat_optim_options) -> dat_status;
    pub fn dat_optim_options_init_sized(opts: *mut dat_optim_options, size: usize) -> dat_status;
    pub fn dat_optim_create(out: *mut *mut dat_optim, ctx: *mut dat_ctx, segments: *const dat_segment, num_segments: i32, opts: *const dat_optim_options) -> dat_status;
    pub fn dat_optim_create_for_model(out: *mut *mut dat_optim, model: *mut dat_model, opts: *const dat_optim_options) -> dat_status;
    pub fn dat_optim_destroy(optim: *mut dat_optim);
    pub fn dat_optim_step(optim: *mut dat_optim, params: *mut dat_tensor, grads: *const dat_tensor) -> dat_status;
    pub fn dat_optim_step_model(optim: *mut dat_optim, model: *mut dat_model) -> dat_status;
    pub fn dat_optim_set_lr_scale(optim: *mut dat_optim, first_segment: i32, count: i32, scale: f32) -> dat_status;
    pub fn dat_optim_lr(optim: *const dat_optim, lr: *mut f64) -> dat_status;
    pub fn dat_optim_get_step(optim: *const dat_optim, step: *mut i64) -> dat_status;
    pub fn dat_optim_set_step(optim: *mut dat_optim, step: i64) -> dat_status;
    pub fn dat_optim_state_size(optim: *const dat_optim, bytes: *mut usize) -> dat_status;
    pub fn dat_optim_state_save(optim: *const dat_optim, buf: *mut c_void, size: usize) -> dat_status;
    pub fn dat_optim_state_load(optim: *mut dat_optim, buf: *const c_void, size: usize) -> dat_status;
}

// ---- include/libdat/dat_data.h ----

pub type dat_dataset_format = i32;
pub const DAT_DATASET_IDX: dat_dataset_format = 0;
pub const DAT_DATASET_CIFAR10: dat_dataset_format = 1;
pub const DAT_DATASET_CIFAR100: dat_dataset_format = 2;
pub const DAT_DATASET_NPY: dat_dataset_format = 3;
pub const DAT_DATASET_FORMAT_FORCE_32BIT: dat_dataset_format = 0x7fffffff;

pub type dat_dataset_layout = i32;
pub const DAT_LAYOUT_AUTO: dat_dataset_layout = 0;
pub const DAT_LAYOUT_NCHW: dat_dataset_layout = 1;
pub const DAT_LAYOUT_NHWC: dat_dataset_layout = 2;
pub const DAT_LAYOUT_FORCE_32BIT: dat_dataset_layout = 0x7fffffff;

pub type dat_dataset_part = i32;
pub const DAT_PART_TRAIN: dat_dataset_part = 0;
pub const DAT_PART_VALIDATION: dat_dataset_part = 1;
pub const DAT_PART_FORCE_32BIT: dat_dataset_part = 0x7fffffff;

#[repr(C)]
pub struct dat_dataset {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_dataset_options {
    pub size: u32,
    pub format: dat_dataset_format,
    pub images_path: *const c_char,
    pub labels_path: *const c_char,
    pub extra_paths: *const *const c_char,
    pub num_extra_paths: i32,
    pub layout: dat_dataset_layout,
    pub num_classes: i32,
    pub classes: *const i32,
    pub num_subset_classes: i32,
    pub part: dat_dataset_part,
    pub validation_count: i64,
    pub validation_fraction: f64,
    pub rank: i32,
    pub world_size: i32,
    pub seed: u64,
    pub shuffle: i32,
    pub batch_size: i32,
    pub drop_last: i32,
    pub random_crop: i32,
    pub crop_padding: i32,
    pub horizontal_flip: i32,
    pub prefetch: i32,
    pub limit: i64,
}

extern "C" {
    pub fn dat_dataset_options_init(opts: *mut dat_dataset_options) -> dat_status;
    pub fn dat_dataset_options_init_sized(
        opts: *mut dat_dataset_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_dataset_open(out: *mut *mut dat_dataset, ctx: *mut dat_ctx, opts: *const dat_dataset_options) -> dat_status;
    pub fn dat_dataset_destroy(ds: *mut dat_dataset);
    pub fn dat_dataset_num_samples(ds: *const dat_dataset, count: *mut i64) -> dat_status;
    pub fn dat_dataset_sample_shape(ds: *const dat_dataset, channels: *mut i32, height: *mut i32, width: *mut i32) -> dat_status;
    pub fn dat_dataset_num_classes(ds: *const dat_dataset, count: *mut i32) -> dat_status;
    pub fn dat_dataset_batches_per_epoch(ds: *const dat_dataset, count: *mut i64) -> dat_status;
    pub fn dat_dataset_set_epoch(ds: *mut dat_dataset, epoch: i64) -> dat_status;
    pub fn dat_dataset_next_batch(ds: *mut dat_dataset, x: *mut dat_tensor, y: *mut dat_tensor, count: *mut i32) -> dat_status;
    pub fn dat_dataset_get_position(ds: *const dat_dataset, epoch: *mut i64, batch: *mut i64) -> dat_status;
    pub fn dat_dataset_set_position(ds: *mut dat_dataset, epoch: i64, batch: i64) -> dat_status;
}

// ---- include/libdat/dat_eval.h ----

pub const DAT_SMOOTH_ABSTAIN: i32 = -1;
pub const DAT_AA_STANDARD: u32 = 0xf;

/// The bit of attack `a` in dat_autoattack_options::attacks (DAT_AA_BIT).
#[allow(non_snake_case)]
pub const fn DAT_AA_BIT(a: dat_aa_attack) -> u32 {
    1u32 << (a as u32)
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_smooth_options {
    pub size: u32,
    pub sigma: f32,
    pub n0: i32,
    pub n: i32,
    pub alpha: f64,
    pub batch: i32,
    pub seed: u64,
    pub first_index: i64,
}

pub type dat_aa_attack = i32;
pub const DAT_AA_APGD_CE: dat_aa_attack = 0;
pub const DAT_AA_APGD_T: dat_aa_attack = 1;
pub const DAT_AA_FAB_T: dat_aa_attack = 2;
pub const DAT_AA_SQUARE: dat_aa_attack = 3;
pub const DAT_AA_COUNT: dat_aa_attack = 4;
pub const DAT_AA_ATTACK_FORCE_32BIT: dat_aa_attack = 0x7fffffff;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_autoattack_options {
    pub size: u32,
    pub norm: dat_norm,
    pub eps: f32,
    pub attacks: u32,
    pub apgd_steps: i32,
    pub target_classes: i32,
    pub fab_steps: i32,
    pub square_queries: i32,
    pub square_p_init: f32,
    pub lo: f32,
    pub hi: f32,
    pub seed: u64,
    pub first_index: i64,
}

pub type dat_aa_outcome = i32;
pub const DAT_AA_ROBUST: dat_aa_outcome = -1;
pub const DAT_AA_MISCLASSIFIED: dat_aa_outcome = -2;
pub const DAT_AA_OUTCOME_FORCE_32BIT: dat_aa_outcome = 0x7fffffff;

extern "C" {
    pub fn dat_stat_incbeta(a: f64, b: f64, x: f64, out: *mut f64) -> dat_status;
    pub fn dat_stat_incbeta_inv(a: f64, b: f64, p: f64, out: *mut f64) -> dat_status;
    pub fn dat_stat_normal_quantile(p: f64, out: *mut f64) -> dat_status;
    pub fn dat_stat_clopper_pearson_lower(successes: i64, trials: i64, alpha: f64, out: *mut f64) -> dat_status;
    pub fn dat_smooth_options_init(opts: *mut dat_smooth_options) -> dat_status;
    pub fn dat_smooth_options_init_sized(opts: *mut dat_smooth_options, size: usize) -> dat_status;
    pub fn dat_smooth_predict(model: *mut dat_model, x: *const dat_tensor, opts: *const dat_smooth_options, pred: *mut i32) -> dat_status;
    pub fn dat_smooth_certify(model: *mut dat_model, x: *const dat_tensor, opts: *const dat_smooth_options, pred: *mut i32, radius: *mut f32) -> dat_status;
    pub fn dat_smooth_certified_accuracy(pred: *const i32, radius: *const f32, labels: *const i32, count: i64, radii: *const f32, n_radii: i32, accuracy: *mut f64) -> dat_status;
    pub fn dat_autoattack_options_init(opts: *mut dat_autoattack_options) -> dat_status;
    pub fn dat_autoattack_options_init_sized(
        opts: *mut dat_autoattack_options,
        size: usize,
    ) -> dat_status;
    pub fn dat_eval_autoattack(model: *mut dat_model, x: *const dat_tensor, y: *const dat_tensor, opts: *const dat_autoattack_options, x_adv: *mut dat_tensor, outcome: *mut i32, robust_correct: *mut i32) -> dat_status;
}

// ---- include/libdat/dat_checkpoint.h ----

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct dat_checkpoint_info {
    pub size: u32,
    pub epoch: i64,
    pub step: i64,
    pub attack_step: u64,
}

extern "C" {
    pub fn dat_checkpoint_save(path: *const c_char, model: *mut dat_model, optim: *mut dat_optim, info: *const dat_checkpoint_info, config: *const c_char) -> dat_status;
    pub fn dat_checkpoint_load(path: *const c_char, model: *mut dat_model, optim: *mut dat_optim, info: *mut dat_checkpoint_info, config: *mut c_char, config_size: usize) -> dat_status;
}

// ---- include/libdat/dat_mpi.h ----

#[cfg(feature = "mpi")]
extern "C" {
    pub fn dat_comm_create_mpi(out: *mut *mut dat_comm, ctx: *mut dat_ctx, comm: MPI_Comm, opts: *const dat_comm_options) -> dat_status;
    pub fn dat_comm_unique_id_broadcast_mpi(id: *mut dat_comm_id, root: i32, comm: MPI_Comm, timeout_s: f64) -> dat_status;
    pub fn dat_comm_create_nccl_mpi(out: *mut *mut dat_comm, ctx: *mut dat_ctx, comm: MPI_Comm, opts: *const dat_comm_options) -> dat_status;
}
macro_rules! default_by_init {
    ($($t:ident => $init:ident),* $(,)?) => {$(
        impl Default for $t {
            /// The library's defaults (the `*_options_init_sized` function, given this
            /// struct's size, so a later libdat with a larger struct writes only these bytes).
            fn default() -> Self {
                let mut o = std::mem::MaybeUninit::<$t>::zeroed();
                // Safety: init fills every field of a valid pointer; all-zero is a
                // valid value of these plain-data structs in any case.
                unsafe {
                    $init(o.as_mut_ptr(), std::mem::size_of::<$t>());
                    o.assume_init()
                }
            }
        }
    )*};
}

default_by_init! {
    dat_ctx_options => dat_ctx_options_init_sized,
    dat_model_options => dat_model_options_init_sized,
    dat_loss_options => dat_loss_options_init_sized,
    dat_input_grad_options => dat_input_grad_options_init_sized,
    dat_model_load_options => dat_model_load_options_init_sized,
    dat_attack_options => dat_attack_options_init_sized,
    dat_quantizer_options => dat_quantizer_options_init_sized,
    dat_comm_options => dat_comm_options_init_sized,
    dat_grad_sync_options => dat_grad_sync_options_init_sized,
    dat_optim_options => dat_optim_options_init_sized,
    dat_dataset_options => dat_dataset_options_init_sized,
    dat_smooth_options => dat_smooth_options_init_sized,
    dat_autoattack_options => dat_autoattack_options_init_sized,
}

macro_rules! default_sized {
    ($($t:ident),* $(,)?) => {$(
        impl Default for $t {
            /// All zero, with `size` set to the struct's size.
            fn default() -> Self {
                // Safety: all-zero is a valid value of these plain-data structs.
                let mut o: $t = unsafe { std::mem::zeroed() };
                o.size = std::mem::size_of::<$t>() as u32;
                o
            }
        }
    )*};
}

default_sized!(dat_segment, dat_comm_stats, dat_checkpoint_info);

impl Default for dat_comm_id {
    fn default() -> Self {
        dat_comm_id { internal: [0; 128] }
    }
}
