"""Finding and loading the libdat shared library, and its C declarations."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _candidates() -> list[str]:
    """Where to look: $LIBDAT_LIBRARY or $LIBDAT_BUILD/libdat.so alone when set (a
    library asked for by name is that one or none); else the repository's build folders,
    then the system."""
    env = os.environ.get("LIBDAT_LIBRARY")
    if env:
        return [env]
    build = os.environ.get("LIBDAT_BUILD")
    if build:
        return [str(Path(build) / "libdat.so")]
    found = []
    repo = _HERE.parent.parent.parent  # bindings/python/libdat -> repository root
    for build in ("build", "build-asan"):
        lib = repo / build / "libdat.so"
        if lib.exists():
            found.append(str(lib))
    system = ctypes.util.find_library("dat")
    if system:
        found.append(system)
    return found


def _load() -> ctypes.CDLL:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:  # try the next candidate, remember why this one failed
            errors.append(f"{path}: {e}")
    detail = "; ".join(errors) if errors else "no candidate found"
    raise ImportError(
        "libdat: cannot load libdat.so (set LIBDAT_LIBRARY to its path, build the "
        f"repository, or install libdat): {detail}")


lib = _load()

c_status = ctypes.c_int32
c_ctx_p = ctypes.c_void_p
c_tensor_p = ctypes.c_void_p
c_log_fn = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)


class CtxOptions(ctypes.Structure):
    """Mirror of dat_ctx_options (include/libdat/dat_ctx.h)."""
    c_name = "dat_ctx_options"
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("device", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("num_threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("log_fn", c_log_fn),
        ("log_user", ctypes.c_void_p),
        ("log_level", ctypes.c_int32),
        ("precision", ctypes.c_int32),
        ("tune_convolutions", ctypes.c_int32),
        ("reserved0", ctypes.c_int32),
        ("cuda_graphs", ctypes.c_int32),
        ("channels_last", ctypes.c_int32),
        ("deterministic", ctypes.c_int32),
    ]


DECLARED: set[str] = set()  # every C function given a signature here (tested to be all)


def _declare(name: str, restype, *argtypes) -> None:
    DECLARED.add(name)
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_P = ctypes.POINTER
_declare("dat_status_string", ctypes.c_char_p, c_status)
_declare("dat_last_error", ctypes.c_char_p)
_declare("dat_clear_error", None)
_declare("dat_version", ctypes.c_uint32)
_declare("dat_version_string", ctypes.c_char_p)
_declare("dat_dtype_size", ctypes.c_size_t, ctypes.c_int32)
_declare("dat_dtype_name", ctypes.c_char_p, ctypes.c_int32)
_declare("dat_has_cuda", ctypes.c_int)
_declare("dat_cuda_device_count", c_status, _P(ctypes.c_int32))

_declare("dat_ctx_options_init", c_status, _P(CtxOptions))
_declare("dat_ctx_options_init_sized", c_status, _P(CtxOptions), ctypes.c_size_t)
_declare("dat_ctx_create", c_status, _P(c_ctx_p), _P(CtxOptions))
_declare("dat_ctx_destroy", None, c_ctx_p)
_declare("dat_ctx_synchronize", c_status, c_ctx_p)
_declare("dat_ctx_device", c_status, c_ctx_p, _P(ctypes.c_int32), _P(ctypes.c_int32))
_declare("dat_ctx_num_threads", c_status, c_ctx_p, _P(ctypes.c_int32))
_declare("dat_ctx_seed", c_status, c_ctx_p, _P(ctypes.c_uint64))

c_step_graph_p = ctypes.c_void_p
_declare("dat_capture_begin", c_status, c_ctx_p)
_declare("dat_capture_end", c_status, c_ctx_p, _P(c_step_graph_p))
_declare("dat_step_graph_launch", c_status, c_step_graph_p)
_declare("dat_step_graph_destroy", None, c_step_graph_p)

_declare("dat_tensor_create", c_status, _P(c_tensor_p), c_ctx_p, ctypes.c_int32, ctypes.c_int32,
         _P(ctypes.c_int64))
_declare("dat_tensor_destroy", None, c_tensor_p)
_declare("dat_tensor_shape", c_status, c_tensor_p, _P(ctypes.c_int32), _P(ctypes.c_int64))
_declare("dat_tensor_dtype", c_status, c_tensor_p, _P(ctypes.c_int32))
_declare("dat_tensor_numel", c_status, c_tensor_p, _P(ctypes.c_int64))
_declare("dat_tensor_nbytes", c_status, c_tensor_p, _P(ctypes.c_size_t))
_declare("dat_tensor_reshape", c_status, c_tensor_p, ctypes.c_int32, _P(ctypes.c_int64))
_declare("dat_tensor_host_data", c_status, c_tensor_p, _P(ctypes.c_void_p))
_declare("dat_tensor_write", c_status, c_tensor_p, ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_tensor_read", c_status, c_tensor_p, ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_tensor_copy", c_status, c_tensor_p, c_tensor_p)
_declare("dat_tensor_fill", c_status, c_tensor_p, ctypes.c_double)
_declare("dat_tensor_fill_uniform", c_status, c_tensor_p, ctypes.c_float, ctypes.c_float,
         ctypes.c_uint64, ctypes.c_uint64)
_declare("dat_tensor_fill_normal", c_status, c_tensor_p, ctypes.c_float, ctypes.c_float,
         ctypes.c_uint64, ctypes.c_uint64)

c_model_p = ctypes.c_void_p
c_builder_p = ctypes.c_void_p


class Segment(ctypes.Structure):
    """Mirror of dat_segment (include/libdat/dat_segment.h)."""
    c_name = "dat_segment"
    _fields_ = [("size", ctypes.c_uint32), ("name", ctypes.c_char_p),
                ("offset", ctypes.c_int64), ("length", ctypes.c_int64),
                ("kind", ctypes.c_int32)]


class LayerSpec(ctypes.Structure):
    """Mirror of dat_layer_spec (include/libdat/dat_model.h)."""
    c_name = "dat_layer_spec"
    _fields_ = [("size", ctypes.c_uint32), ("kind", ctypes.c_int32), ("name", ctypes.c_char_p),
                ("out_features", ctypes.c_int32), ("kernel", ctypes.c_int32),
                ("stride", ctypes.c_int32), ("padding", ctypes.c_int32),
                ("bias", ctypes.c_int32), ("bn_eps", ctypes.c_float),
                ("bn_momentum", ctypes.c_float)]


class ModelOptions(ctypes.Structure):
    """Mirror of dat_model_options."""
    c_name = "dat_model_options"
    _fields_ = [("size", ctypes.c_uint32), ("num_classes", ctypes.c_int32),
                ("in_channels", ctypes.c_int32), ("in_height", ctypes.c_int32),
                ("in_width", ctypes.c_int32), ("mean", ctypes.POINTER(ctypes.c_float)),
                ("std", ctypes.POINTER(ctypes.c_float)), ("init_seed", ctypes.c_uint64)]


class LossOptions(ctypes.Structure):
    """Mirror of dat_loss_options."""
    c_name = "dat_loss_options"
    _fields_ = [("size", ctypes.c_uint32), ("adv_weight", ctypes.c_float),
                ("clean_weight", ctypes.c_float), ("kl_weight", ctypes.c_float),
                ("x_clean", c_tensor_p), ("sample_weights", c_tensor_p),
                ("reduction", ctypes.c_int32), ("accumulate", ctypes.c_int32),
                ("loss_sum", c_tensor_p)]


class InputGradOptions(ctypes.Structure):
    """Mirror of dat_input_grad_options."""
    c_name = "dat_input_grad_options"
    _fields_ = [("size", ctypes.c_uint32), ("objective", ctypes.c_int32),
                ("target_logits", c_tensor_p), ("reduction", ctypes.c_int32),
                ("sample_losses", c_tensor_p), ("logits", c_tensor_p)]


_I32P = _P(ctypes.c_int32)
_declare("dat_layer_spec_init", c_status, _P(LayerSpec), ctypes.c_int32)
_declare("dat_layer_spec_init_sized", c_status, _P(LayerSpec), ctypes.c_int32, ctypes.c_size_t)
_declare("dat_model_builder_create", c_status, _P(c_builder_p), c_ctx_p, ctypes.c_int32,
         ctypes.c_int32, ctypes.c_int32)
_declare("dat_model_builder_destroy", None, c_builder_p)
_declare("dat_model_builder_set_normalization", c_status, c_builder_p, _P(ctypes.c_float),
         _P(ctypes.c_float))
_declare("dat_model_builder_add", c_status, c_builder_p, _P(LayerSpec), ctypes.c_int32,
         ctypes.c_int32, _I32P)
_declare("dat_model_builder_finish", c_status, c_builder_p, ctypes.c_int32, ctypes.c_uint64,
         _P(c_model_p))
_declare("dat_model_options_init", c_status, _P(ModelOptions))
_declare("dat_model_options_init_sized", c_status, _P(ModelOptions), ctypes.c_size_t)
_declare("dat_model_create_preset", c_status, _P(c_model_p), c_ctx_p, ctypes.c_char_p,
         _P(ModelOptions))
_declare("dat_model_destroy", None, c_model_p)
_declare("dat_model_set_mode", c_status, c_model_p, ctypes.c_int32)
_declare("dat_model_mode_get", c_status, c_model_p, _I32P)
_declare("dat_model_shape", c_status, c_model_p, _I32P, _I32P, _I32P, _I32P)
_declare("dat_model_forward", c_status, c_model_p, c_tensor_p, c_tensor_p)
_declare("dat_loss_options_init", c_status, _P(LossOptions))
_declare("dat_loss_options_init_sized", c_status, _P(LossOptions), ctypes.c_size_t)
_declare("dat_model_loss_backward", c_status, c_model_p, c_tensor_p, c_tensor_p,
         _P(LossOptions), _P(ctypes.c_float))
_declare("dat_input_grad_options_init", c_status, _P(InputGradOptions))
_declare("dat_input_grad_options_init_sized", c_status, _P(InputGradOptions), ctypes.c_size_t)
_declare("dat_model_input_grad", c_status, c_model_p, c_tensor_p, c_tensor_p,
         _P(InputGradOptions), c_tensor_p, _P(ctypes.c_float))
_declare("dat_model_params", c_status, c_model_p, _P(c_tensor_p))
_declare("dat_model_grads", c_status, c_model_p, _P(c_tensor_p))
_declare("dat_model_buffers", c_status, c_model_p, _P(c_tensor_p))
_declare("dat_model_num_segments", c_status, c_model_p, _I32P)
_declare("dat_model_segment", c_status, c_model_p, ctypes.c_int32, _P(Segment))

c_attack_p = ctypes.c_void_p


class AttackOptions(ctypes.Structure):
    """Mirror of dat_attack_options (include/libdat/dat_attack.h)."""
    c_name = "dat_attack_options"
    _fields_ = [("size", ctypes.c_uint32), ("kind", ctypes.c_int32), ("norm", ctypes.c_int32),
                ("eps", ctypes.c_float), ("alpha", ctypes.c_float), ("steps", ctypes.c_int32),
                ("random_start", ctypes.c_int32), ("restarts", ctypes.c_int32),
                ("mode", ctypes.c_int32), ("lo", ctypes.c_float), ("hi", ctypes.c_float),
                ("sigma", ctypes.c_float), ("noise_samples", ctypes.c_int32),
                ("seed", ctypes.c_uint64), ("rank", ctypes.c_int32)]


_declare("dat_attack_options_init", c_status, _P(AttackOptions))
_declare("dat_attack_options_init_sized", c_status, _P(AttackOptions), ctypes.c_size_t)
_declare("dat_attack_create", c_status, _P(c_attack_p), c_ctx_p, _P(AttackOptions))
_declare("dat_attack_destroy", None, c_attack_p)
_declare("dat_attack_set_step", c_status, c_attack_p, ctypes.c_uint64)
_declare("dat_attack_get_step", c_status, c_attack_p, _P(ctypes.c_uint64))
_declare("dat_attack_perturb", c_status, c_attack_p, c_model_p, c_tensor_p, c_tensor_p,
         c_tensor_p)
_declare("dat_attack_gaussian_copies", c_status, c_attack_p, c_tensor_p, c_tensor_p, c_tensor_p,
         c_tensor_p)
_declare("dat_eval_robust_accuracy", c_status, c_attack_p, c_model_p, c_tensor_p, c_tensor_p,
         _I32P, _I32P, c_tensor_p)
_declare("dat_model_num_nodes", c_status, c_model_p, _I32P)
_declare("dat_model_node_info", c_status, c_model_p, ctypes.c_int32, _I32P, _I32P, _I32P, _I32P)
_declare("dat_model_activation", c_status, c_model_p, ctypes.c_int32, c_tensor_p)


c_on_tensor_fn = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p)


class ModelLoadOptions(ctypes.Structure):
    """Mirror of dat_model_load_options."""
    c_name = "dat_model_load_options"
    _fields_ = [("size", ctypes.c_uint32), ("ignore_unexpected", ctypes.c_int32),
                ("reinit_head", ctypes.c_int32), ("on_tensor", c_on_tensor_fn),
                ("user", ctypes.c_void_p)]


_declare("dat_model_save", c_status, c_model_p, ctypes.c_char_p)
_declare("dat_model_num_layers", c_status, c_model_p, _I32P)
_declare("dat_model_layer_segments", c_status, c_model_p, ctypes.c_int32, _I32P, _I32P)
_declare("dat_model_load_options_init", c_status, _P(ModelLoadOptions))
_declare("dat_model_load_options_init_sized", c_status, _P(ModelLoadOptions), ctypes.c_size_t)
_declare("dat_model_load", c_status, c_model_p, ctypes.c_char_p, _P(ModelLoadOptions))

c_optim_p = ctypes.c_void_p


class OptimOptions(ctypes.Structure):
    """Mirror of dat_optim_options (include/libdat/dat_optim.h)."""
    c_name = "dat_optim_options"
    _fields_ = [("size", ctypes.c_uint32), ("kind", ctypes.c_int32), ("lr", ctypes.c_float),
                ("momentum", ctypes.c_float), ("beta2", ctypes.c_float), ("eps", ctypes.c_float),
                ("weight_decay", ctypes.c_float), ("decoupled_decay", ctypes.c_int32),
                ("bias_correction", ctypes.c_int32), ("lalr", ctypes.c_int32),
                ("c_l", ctypes.c_float), ("c_u", ctypes.c_float),
                ("exclude_bias_bn_decay", ctypes.c_int32),
                ("exclude_bias_bn_lalr", ctypes.c_int32), ("schedule", ctypes.c_int32),
                ("warmup_steps", ctypes.c_int64), ("total_steps", ctypes.c_int64),
                ("num_milestones", ctypes.c_int32), ("milestones", ctypes.c_int64 * 16),
                ("gamma", ctypes.c_float), ("scaling", ctypes.c_int32),
                ("global_batch", ctypes.c_int64), ("ref_batch", ctypes.c_int64)]


_declare("dat_optim_options_init", c_status, _P(OptimOptions))
_declare("dat_optim_options_init_sized", c_status, _P(OptimOptions), ctypes.c_size_t)
_declare("dat_optim_create", c_status, _P(c_optim_p), c_ctx_p, _P(Segment), ctypes.c_int32,
         _P(OptimOptions))
_declare("dat_optim_create_for_model", c_status, _P(c_optim_p), c_model_p, _P(OptimOptions))
_declare("dat_optim_destroy", None, c_optim_p)
_declare("dat_optim_step", c_status, c_optim_p, c_tensor_p, c_tensor_p)
_declare("dat_optim_step_model", c_status, c_optim_p, c_model_p)
_declare("dat_optim_set_lr_scale", c_status, c_optim_p, ctypes.c_int32, ctypes.c_int32,
         ctypes.c_float)
_declare("dat_optim_lr", c_status, c_optim_p, _P(ctypes.c_double))
_declare("dat_optim_get_step", c_status, c_optim_p, _P(ctypes.c_int64))
_declare("dat_optim_set_step", c_status, c_optim_p, ctypes.c_int64)
_declare("dat_optim_state_size", c_status, c_optim_p, _P(ctypes.c_size_t))
_declare("dat_optim_state_save", c_status, c_optim_p, ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_optim_state_load", c_status, c_optim_p, ctypes.c_void_p, ctypes.c_size_t)

c_quantizer_p = ctypes.c_void_p


class QuantizerOptions(ctypes.Structure):
    """Mirror of dat_quantizer_options (include/libdat/dat_quant.h)."""
    c_name = "dat_quantizer_options"
    _fields_ = [("size", ctypes.c_uint32), ("bits", ctypes.c_int32),
                ("bucket_size", ctypes.c_int32), ("norm", ctypes.c_int32),
                ("rank", ctypes.c_int32), ("error_feedback", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


_declare("dat_quantizer_options_init", c_status, _P(QuantizerOptions))
_declare("dat_quantizer_options_init_sized", c_status, _P(QuantizerOptions), ctypes.c_size_t)
_declare("dat_quantizer_create", c_status, _P(c_quantizer_p), c_ctx_p, _P(QuantizerOptions))
_declare("dat_quantizer_destroy", None, c_quantizer_p)
_declare("dat_quantizer_options_get", c_status, c_quantizer_p, _P(QuantizerOptions))
_declare("dat_quantizer_encoded_size", c_status, c_quantizer_p, ctypes.c_int64,
         _P(ctypes.c_size_t))
_declare("dat_quantizer_encode", c_status, c_quantizer_p, c_tensor_p, ctypes.c_uint64,
         ctypes.c_void_p, ctypes.c_size_t)
_declare("dat_quantizer_decode", c_status, c_quantizer_p, ctypes.c_void_p, ctypes.c_size_t,
         c_tensor_p, ctypes.c_int)
_declare("dat_quantizer_reset", c_status, c_quantizer_p)

c_comm_p = ctypes.c_void_p


class CommOptions(ctypes.Structure):
    """Mirror of dat_comm_options (include/libdat/dat_comm.h)."""
    c_name = "dat_comm_options"
    _fields_ = [("size", ctypes.c_uint32), ("timeout_s", ctypes.c_double)]


class CommStats(ctypes.Structure):
    """Mirror of dat_comm_stats."""
    c_name = "dat_comm_stats"
    _fields_ = [("size", ctypes.c_uint32), ("calls", ctypes.c_uint64),
                ("bytes_sent", ctypes.c_uint64), ("bytes_received", ctypes.c_uint64),
                ("seconds", ctypes.c_double)]


class CommId(ctypes.Structure):
    """Mirror of dat_comm_id: the 128-byte NCCL unique id."""
    c_name = "dat_comm_id"
    _fields_ = [("internal", ctypes.c_ubyte * 128)]


_declare("dat_comm_options_init", c_status, _P(CommOptions))
_declare("dat_comm_options_init_sized", c_status, _P(CommOptions), ctypes.c_size_t)
_declare("dat_comm_create_self", c_status, _P(c_comm_p), c_ctx_p)
_declare("dat_comm_destroy", None, c_comm_p)
_declare("dat_comm_rank", c_status, c_comm_p, _I32P)
_declare("dat_comm_size", c_status, c_comm_p, _I32P)
_declare("dat_comm_allreduce", c_status, c_comm_p, c_tensor_p, ctypes.c_int32)
_declare("dat_comm_broadcast", c_status, c_comm_p, c_tensor_p, ctypes.c_int32)
_declare("dat_comm_allgather", c_status, c_comm_p, c_tensor_p, c_tensor_p)
_declare("dat_comm_allreduce_quantized", c_status, c_comm_p, c_tensor_p, c_quantizer_p,
         ctypes.c_int32, ctypes.c_uint64)
_declare("dat_comm_allreduce_grads", c_status, c_comm_p, c_model_p, c_quantizer_p,
         ctypes.c_int32, ctypes.c_uint64)
_declare("dat_comm_broadcast_model", c_status, c_comm_p, c_model_p, ctypes.c_int32)

c_grad_sync_p = ctypes.c_void_p


class GradSyncOptions(ctypes.Structure):
    """Mirror of dat_grad_sync_options (include/libdat/dat_comm.h)."""
    c_name = "dat_grad_sync_options"
    _fields_ = [("size", ctypes.c_uint32), ("bucket_elems", ctypes.c_int64),
                ("quantizer", c_quantizer_p), ("mode", ctypes.c_int32)]


_declare("dat_grad_sync_options_init", c_status, _P(GradSyncOptions))
_declare("dat_grad_sync_options_init_sized", c_status, _P(GradSyncOptions), ctypes.c_size_t)
_declare("dat_grad_sync_create", c_status, _P(c_grad_sync_p), c_comm_p, c_model_p,
         _P(GradSyncOptions))
_declare("dat_grad_sync_destroy", None, c_grad_sync_p)
_declare("dat_grad_sync_begin", c_status, c_grad_sync_p, ctypes.c_uint64)
_declare("dat_grad_sync_end", c_status, c_grad_sync_p)
_declare("dat_grad_sync_overlaps", c_status, c_grad_sync_p, _I32P)
_declare("dat_comm_get_stats", c_status, c_comm_p, _P(CommStats))
_declare("dat_comm_reset_stats", c_status, c_comm_p)
_declare("dat_comm_abort", c_status, c_comm_p)
_declare("dat_comm_unique_id", c_status, _P(CommId))
_declare("dat_comm_create_nccl", c_status, _P(c_comm_p), c_ctx_p, ctypes.c_int32,
         ctypes.c_int32, _P(CommId), _P(CommOptions))
_declare("dat_comm_unique_id_write", c_status, _P(CommId), ctypes.c_char_p)
_declare("dat_comm_unique_id_read", c_status, _P(CommId), ctypes.c_char_p, ctypes.c_double)

# dat_mpi.h: exported only by builds with MPI. MPI_Comm is a pointer in Open MPI
# and an int in MPICH; comm.py sets the argument type from mpi4py's handle size
# when it first needs one, so these start with the handle type left open.
HAVE_MPI = hasattr(lib, "dat_comm_create_mpi")
if HAVE_MPI:
    _declare("dat_comm_create_mpi", c_status, _P(c_comm_p), c_ctx_p, ctypes.c_void_p,
             _P(CommOptions))
    _declare("dat_comm_unique_id_broadcast_mpi", c_status, _P(CommId), ctypes.c_int32,
             ctypes.c_void_p, ctypes.c_double)
    _declare("dat_comm_create_nccl_mpi", c_status, _P(c_comm_p), c_ctx_p, ctypes.c_void_p,
             _P(CommOptions))


def set_mpi_comm_type(c_type) -> None:
    """Sets the C type of MPI_Comm in the dat_mpi.h declarations (pointer or int)."""
    lib.dat_comm_create_mpi.argtypes = [_P(c_comm_p), c_ctx_p, c_type, _P(CommOptions)]
    lib.dat_comm_unique_id_broadcast_mpi.argtypes = [_P(CommId), ctypes.c_int32, c_type,
                                                     ctypes.c_double]
    lib.dat_comm_create_nccl_mpi.argtypes = [_P(c_comm_p), c_ctx_p, c_type, _P(CommOptions)]


c_dataset_p = ctypes.c_void_p


class DatasetOptions(ctypes.Structure):
    """Mirror of dat_dataset_options (include/libdat/dat_data.h)."""
    c_name = "dat_dataset_options"
    _fields_ = [("size", ctypes.c_uint32), ("format", ctypes.c_int32),
                ("images_path", ctypes.c_char_p), ("labels_path", ctypes.c_char_p),
                ("extra_paths", _P(ctypes.c_char_p)), ("num_extra_paths", ctypes.c_int32),
                ("layout", ctypes.c_int32), ("num_classes", ctypes.c_int32),
                ("classes", _I32P), ("num_subset_classes", ctypes.c_int32),
                ("part", ctypes.c_int32), ("validation_count", ctypes.c_int64),
                ("validation_fraction", ctypes.c_double), ("rank", ctypes.c_int32),
                ("world_size", ctypes.c_int32), ("seed", ctypes.c_uint64),
                ("shuffle", ctypes.c_int32), ("batch_size", ctypes.c_int32),
                ("drop_last", ctypes.c_int32), ("random_crop", ctypes.c_int32),
                ("crop_padding", ctypes.c_int32), ("horizontal_flip", ctypes.c_int32),
                ("prefetch", ctypes.c_int32), ("limit", ctypes.c_int64)]


_I64P = _P(ctypes.c_int64)
_declare("dat_dataset_options_init", c_status, _P(DatasetOptions))
_declare("dat_dataset_options_init_sized", c_status, _P(DatasetOptions), ctypes.c_size_t)
_declare("dat_dataset_open", c_status, _P(c_dataset_p), c_ctx_p, _P(DatasetOptions))
_declare("dat_dataset_destroy", None, c_dataset_p)
_declare("dat_dataset_num_samples", c_status, c_dataset_p, _I64P)
_declare("dat_dataset_sample_shape", c_status, c_dataset_p, _I32P, _I32P, _I32P)
_declare("dat_dataset_num_classes", c_status, c_dataset_p, _I32P)
_declare("dat_dataset_batches_per_epoch", c_status, c_dataset_p, _I64P)
_declare("dat_dataset_set_epoch", c_status, c_dataset_p, ctypes.c_int64)
_declare("dat_dataset_next_batch", c_status, c_dataset_p, c_tensor_p, c_tensor_p, _I32P)
_declare("dat_dataset_get_position", c_status, c_dataset_p, _I64P, _I64P)
_declare("dat_dataset_set_position", c_status, c_dataset_p, ctypes.c_int64, ctypes.c_int64)


class CheckpointInfo(ctypes.Structure):
    """Mirror of dat_checkpoint_info (include/libdat/dat_checkpoint.h)."""
    c_name = "dat_checkpoint_info"
    _fields_ = [("size", ctypes.c_uint32), ("epoch", ctypes.c_int64), ("step", ctypes.c_int64),
                ("attack_step", ctypes.c_uint64)]


_declare("dat_checkpoint_save", c_status, ctypes.c_char_p, c_model_p, c_optim_p,
         _P(CheckpointInfo), ctypes.c_char_p)
_declare("dat_checkpoint_load", c_status, ctypes.c_char_p, c_model_p, c_optim_p,
         _P(CheckpointInfo), ctypes.c_char_p, ctypes.c_size_t)


class SmoothOptions(ctypes.Structure):
    """Mirror of dat_smooth_options (include/libdat/dat_eval.h)."""
    c_name = "dat_smooth_options"
    _fields_ = [("size", ctypes.c_uint32), ("sigma", ctypes.c_float), ("n0", ctypes.c_int32),
                ("n", ctypes.c_int32), ("alpha", ctypes.c_double), ("batch", ctypes.c_int32),
                ("seed", ctypes.c_uint64), ("first_index", ctypes.c_int64)]


class AutoAttackOptions(ctypes.Structure):
    """Mirror of dat_autoattack_options (include/libdat/dat_eval.h)."""
    c_name = "dat_autoattack_options"
    _fields_ = [("size", ctypes.c_uint32), ("norm", ctypes.c_int32), ("eps", ctypes.c_float),
                ("attacks", ctypes.c_uint32), ("apgd_steps", ctypes.c_int32),
                ("target_classes", ctypes.c_int32), ("fab_steps", ctypes.c_int32),
                ("square_queries", ctypes.c_int32), ("square_p_init", ctypes.c_float),
                ("lo", ctypes.c_float), ("hi", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("first_index", ctypes.c_int64)]


_DP = _P(ctypes.c_double)
_FP = _P(ctypes.c_float)
_declare("dat_stat_incbeta", c_status, ctypes.c_double, ctypes.c_double, ctypes.c_double, _DP)
_declare("dat_stat_incbeta_inv", c_status, ctypes.c_double, ctypes.c_double, ctypes.c_double,
         _DP)
_declare("dat_stat_normal_quantile", c_status, ctypes.c_double, _DP)
_declare("dat_stat_clopper_pearson_lower", c_status, ctypes.c_int64, ctypes.c_int64,
         ctypes.c_double, _DP)
_declare("dat_smooth_options_init", c_status, _P(SmoothOptions))
_declare("dat_smooth_options_init_sized", c_status, _P(SmoothOptions), ctypes.c_size_t)
_declare("dat_smooth_predict", c_status, c_model_p, c_tensor_p, _P(SmoothOptions), _I32P)
_declare("dat_smooth_certify", c_status, c_model_p, c_tensor_p, _P(SmoothOptions), _I32P, _FP)
_declare("dat_smooth_certified_accuracy", c_status, _I32P, _FP, _I32P, ctypes.c_int64, _FP,
         ctypes.c_int32, _DP)
_declare("dat_autoattack_options_init", c_status, _P(AutoAttackOptions))
_declare("dat_autoattack_options_init_sized", c_status, _P(AutoAttackOptions), ctypes.c_size_t)
_declare("dat_eval_autoattack", c_status, c_model_p, c_tensor_p, c_tensor_p,
         _P(AutoAttackOptions), c_tensor_p, _I32P, _I32P)
