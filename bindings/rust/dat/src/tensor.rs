//! Tensors, and their contents as Rust slices.
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr;

use crate::{check, invalid, len_i32, sys, Context, Result};

/// Element types (dat_dtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float, `f32` (DAT_FLOAT32).
    Float32,
    /// bfloat16, held in Rust as `u16` bit patterns (DAT_BFLOAT16).
    BFloat16,
    /// 32-bit signed integer, `i32`, e.g. labels (DAT_INT32).
    Int32,
    /// Unsigned byte, `u8`, e.g. masks (DAT_UINT8).
    UInt8,
}

impl DType {
    /// The C value (`sys::DAT_FLOAT32` ...).
    pub fn raw(self) -> sys::dat_dtype {
        match self {
            DType::Float32 => sys::DAT_FLOAT32,
            DType::BFloat16 => sys::DAT_BFLOAT16,
            DType::Int32 => sys::DAT_INT32,
            DType::UInt8 => sys::DAT_UINT8,
        }
    }

    fn from_raw(d: sys::dat_dtype) -> Result<DType> {
        match d {
            sys::DAT_FLOAT32 => Ok(DType::Float32),
            sys::DAT_BFLOAT16 => Ok(DType::BFloat16),
            sys::DAT_INT32 => Ok(DType::Int32),
            sys::DAT_UINT8 => Ok(DType::UInt8),
            _ => Err(invalid("unknown dtype")),
        }
    }
}

/// Rust element types of tensors: f32, u16 (bfloat16 bits), i32, u8.
pub trait Element: Copy + Default {
    /// The dtype of tensors holding this type.
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::Float32;
}
impl Element for u16 {
    const DTYPE: DType = DType::BFloat16;
}
impl Element for i32 {
    const DTYPE: DType = DType::Int32;
}
impl Element for u8 {
    const DTYPE: DType = DType::UInt8;
}

/// A dense tensor on a context's device. `'a` is the context it was made
/// from, or the model that owns it (then dropping it destroys nothing).
pub struct Tensor<'a> {
    raw: *mut sys::dat_tensor,
    owned: bool,
    _from: PhantomData<&'a ()>,
}

impl<'a> Tensor<'a> {
    /// A zero-filled tensor of `dtype` and `shape` on the context's device
    /// (dat_tensor_create).
    pub fn new(ctx: &'a Context, dtype: DType, shape: &[i64]) -> Result<Tensor<'a>> {
        let ndim = len_i32(shape.len(), "Tensor::new: shape.len()")?;
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::dat_tensor_create(&mut raw, ctx.as_ptr(), dtype.raw(), ndim, shape.as_ptr())
        })?;
        Ok(Tensor { raw, owned: true, _from: PhantomData })
    }

    /// A tensor of `shape` holding a copy of `data`.
    pub fn from_slice<T: Element>(ctx: &'a Context, shape: &[i64], data: &[T])
                                  -> Result<Tensor<'a>> {
        let mut t = Tensor::new(ctx, T::DTYPE, shape)?;
        t.write(data)?;
        Ok(t)
    }

    /// Wraps a tensor owned by something else (a model's flat buffers).
    pub(crate) fn borrowed(raw: *mut sys::dat_tensor) -> Tensor<'a> {
        Tensor { raw, owned: false, _from: PhantomData }
    }

    /// The C handle, owned by this `Tensor` or by the model it borrows.
    pub fn as_ptr(&self) -> *mut sys::dat_tensor {
        self.raw
    }

    /// The sizes of its dimensions; empty for a scalar (dat_tensor_shape).
    pub fn shape(&self) -> Result<Vec<i64>> {
        let mut nd = 0;
        let mut dims = [0i64; sys::DAT_TENSOR_MAX_DIMS];
        check(unsafe { sys::dat_tensor_shape(self.raw, &mut nd, dims.as_mut_ptr()) })?;
        Ok(dims[..nd as usize].to_vec())
    }

    /// Its element type (dat_tensor_dtype).
    pub fn dtype(&self) -> Result<DType> {
        let mut d = 0;
        check(unsafe { sys::dat_tensor_dtype(self.raw, &mut d) })?;
        DType::from_raw(d)
    }

    /// Number of elements, 1 for a scalar (dat_tensor_numel).
    pub fn numel(&self) -> Result<i64> {
        let mut n = 0;
        check(unsafe { sys::dat_tensor_numel(self.raw, &mut n) })?;
        Ok(n)
    }

    /// Size of its data in bytes (dat_tensor_nbytes).
    pub fn nbytes(&self) -> Result<usize> {
        let mut n = 0;
        check(unsafe { sys::dat_tensor_nbytes(self.raw, &mut n) })?;
        Ok(n)
    }

    /// Changes the shape without moving data; the element count must stay
    /// (dat_tensor_reshape).
    pub fn reshape(&mut self, shape: &[i64]) -> Result<()> {
        let ndim = len_i32(shape.len(), "Tensor::reshape: shape.len()")?;
        check(unsafe { sys::dat_tensor_reshape(self.raw, ndim, shape.as_ptr()) })
    }

    fn expect<T: Element>(&self, len: usize) -> Result<()> {
        if self.dtype()? != T::DTYPE {
            return Err(invalid("the slice's element type is not the tensor's dtype"));
        }
        if self.numel()? as usize != len {
            return Err(invalid("the slice's length is not the tensor's element count"));
        }
        Ok(())
    }

    /// Copies `data` (the tensor's dtype and element count) into the tensor.
    pub fn write<T: Element>(&mut self, data: &[T]) -> Result<()> {
        self.expect::<T>(data.len())?;
        check(unsafe {
            sys::dat_tensor_write(self.raw, data.as_ptr() as *const c_void,
                                  std::mem::size_of_val(data))
        })
    }

    /// Copies the tensor into `out` (its dtype and element count).
    pub fn read_into<T: Element>(&self, out: &mut [T]) -> Result<()> {
        self.expect::<T>(out.len())?;
        check(unsafe {
            sys::dat_tensor_read(self.raw, out.as_mut_ptr() as *mut c_void,
                                 std::mem::size_of_val(out))
        })
    }

    /// A copy of the contents.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let mut v = vec![T::default(); self.numel()? as usize];
        self.read_into(&mut v)?;
        Ok(v)
    }

    fn host_data<T: Element>(&self) -> Result<(*mut T, usize)> {
        let n = self.numel()? as usize;
        self.expect::<T>(n)?;
        let mut p = ptr::null_mut();
        check(unsafe { sys::dat_tensor_host_data(self.raw, &mut p) })?;
        Ok((p as *mut T, n))
    }

    /// The memory of a CPU tensor, without copying (DAT_ERR_UNSUPPORTED on a GPU).
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let (p, n) = self.host_data::<T>()?;
        // Safety: the tensor owns n elements of T at p while it lives; the
        // borrow of self keeps it alive and unchanged through this API.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// The memory of a CPU tensor, mutable, without copying.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        let (p, n) = self.host_data::<T>()?;
        // Safety: as above, and &mut self makes this the only access.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }

    /// Copies `src` (same dtype and shape, any context) into this tensor.
    pub fn copy_from(&mut self, src: &Tensor) -> Result<()> {
        check(unsafe { sys::dat_tensor_copy(self.raw, src.raw) })
    }

    /// Sets every element to `value`, converted to the dtype; for integer dtypes
    /// it must be an integer in range (dat_tensor_fill).
    pub fn fill(&mut self, value: f64) -> Result<()> {
        check(unsafe { sys::dat_tensor_fill(self.raw, value) })
    }

    /// Uniform values in [low, high) from the context's Philox stream.
    pub fn fill_uniform(&mut self, low: f32, high: f32, stream: u64, offset: u64) -> Result<()> {
        check(unsafe { sys::dat_tensor_fill_uniform(self.raw, low, high, stream, offset) })
    }

    /// Normal values N(mean, std^2) from the context's Philox stream.
    pub fn fill_normal(&mut self, mean: f32, std: f32, stream: u64, offset: u64) -> Result<()> {
        check(unsafe { sys::dat_tensor_fill_normal(self.raw, mean, std, stream, offset) })
    }
}

impl Drop for Tensor<'_> {
    fn drop(&mut self) {
        if self.owned {
            unsafe { sys::dat_tensor_destroy(self.raw) }
        }
    }
}

pub(crate) fn opt_ptr(t: Option<&Tensor>) -> *mut sys::dat_tensor {
    t.map(|t| t.as_ptr()).unwrap_or(ptr::null_mut())
}
