//! The quantizer, communicators and the NCCL unique id.
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr;

use crate::{check, cstring, invalid, sys, CommOptions, Context, Model, QuantizerOptions, Result,
            Tensor};

/// The randomized b-bit quantizer (QSGD).
pub struct Quantizer<'c> {
    raw: *mut sys::dat_quantizer,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> Quantizer<'c> {
    /// Creates a quantizer computing on `ctx` (dat_quantizer_create).
    pub fn new(ctx: &'c Context, opts: &QuantizerOptions) -> Result<Quantizer<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_quantizer_create(&mut raw, ctx.as_ptr(), opts) })?;
        Ok(Quantizer { raw, _ctx: PhantomData })
    }

    /// The C handle, owned by this `Quantizer`.
    pub fn as_ptr(&self) -> *mut sys::dat_quantizer {
        self.raw
    }

    /// The options, defaults resolved.
    pub fn options(&self) -> Result<QuantizerOptions> {
        let mut o = QuantizerOptions::default();
        check(unsafe { sys::dat_quantizer_options_get(self.raw, &mut o) })?;
        Ok(o)
    }

    /// Bytes of the encoding of n elements.
    pub fn encoded_size(&self, n: i64) -> Result<usize> {
        let mut b = 0;
        check(unsafe { sys::dat_quantizer_encoded_size(self.raw, n, &mut b) })?;
        Ok(b)
    }

    /// Encodes x into `codes` (at least encoded_size bytes).
    pub fn encode(&mut self, x: &Tensor, step: u64, codes: &mut [u8]) -> Result<()> {
        check(unsafe {
            sys::dat_quantizer_encode(self.raw, x.as_ptr(), step, codes.as_mut_ptr() as *mut c_void,
                                      codes.len())
        })
    }

    /// Encodes x into a new buffer of exactly encoded_size bytes.
    pub fn encode_vec(&mut self, x: &Tensor, step: u64) -> Result<Vec<u8>> {
        let mut codes = vec![0u8; self.encoded_size(x.numel()?)?];
        self.encode(x, step, &mut codes)?;
        Ok(codes)
    }

    /// out = q(x), or out += q(x) with accumulate.
    pub fn decode(&mut self, codes: &[u8], out: &mut Tensor, accumulate: bool) -> Result<()> {
        check(unsafe {
            sys::dat_quantizer_decode(self.raw, codes.as_ptr() as *const c_void, codes.len(),
                                      out.as_ptr(), accumulate as i32)
        })
    }

    /// Zeroes the error-feedback residual.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::dat_quantizer_reset(self.raw) })
    }
}

impl Drop for Quantizer<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_quantizer_destroy(self.raw) }
    }
}

/// Algorithm of the quantized all-reduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantMode {
    /// Each rank quantizes, the codes are all-gathered and averaged (DAT_QUANT_ONE_SIDED).
    OneSided,
    /// Shards exchanged, averaged and quantized again (DAT_QUANT_TWO_SIDED).
    TwoSided,
}

impl QuantMode {
    pub(crate) fn raw(self) -> sys::dat_quant_mode {
        match self {
            QuantMode::OneSided => sys::DAT_QUANT_ONE_SIDED,
            QuantMode::TwoSided => sys::DAT_QUANT_TWO_SIDED,
        }
    }
}

/// Counters of a communicator.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// Successful collectives.
    pub calls: u64,
    /// Payload bytes this rank sent.
    pub bytes_sent: u64,
    /// Payload bytes this rank received.
    pub bytes_received: u64,
    /// Wall time inside successful collectives.
    pub seconds: f64,
}

/// The 128-byte NCCL unique id.
#[derive(Clone, Copy)]
pub struct UniqueId(pub sys::dat_comm_id);

impl UniqueId {
    /// A fresh id (builds with CUDA and NCCL; DAT_ERR_UNSUPPORTED otherwise).
    pub fn new() -> Result<UniqueId> {
        let mut id = sys::dat_comm_id::default();
        check(unsafe { sys::dat_comm_unique_id(&mut id) })?;
        Ok(UniqueId(id))
    }

    /// The id of 128 bytes made elsewhere (moved by the host's own channel).
    pub fn from_bytes(bytes: &[u8]) -> Result<UniqueId> {
        if bytes.len() != 128 {
            return Err(invalid("a unique id has 128 bytes"));
        }
        let mut id = sys::dat_comm_id::default();
        id.internal.copy_from_slice(bytes);
        Ok(UniqueId(id))
    }

    /// The id's 128 bytes, to move to the other ranks.
    pub fn bytes(&self) -> &[u8] {
        &self.0.internal
    }

    /// Writes the id to `path` atomically.
    pub fn write(&self, path: &str) -> Result<()> {
        let p = cstring(path)?;
        check(unsafe { sys::dat_comm_unique_id_write(&self.0, p.as_ptr()) })
    }

    /// Waits up to `timeout_s` for `path`, then reads the id.
    pub fn read(path: &str, timeout_s: f64) -> Result<UniqueId> {
        let p = cstring(path)?;
        let mut id = sys::dat_comm_id::default();
        check(unsafe { sys::dat_comm_unique_id_read(&mut id, p.as_ptr(), timeout_s) })?;
        Ok(UniqueId(id))
    }

    /// Collective over the ranks of `comm`: every rank receives rank `root`'s id
    /// (make it with [`UniqueId::new`] on the root first), waiting at most
    /// `timeout_s` (dat_comm_unique_id_broadcast_mpi).
    ///
    /// # Safety
    /// `comm` must be a valid communicator of an initialized MPI.
    #[cfg(feature = "mpi")]
    pub unsafe fn broadcast_mpi(&mut self, root: i32, comm: sys::MPI_Comm, timeout_s: f64)
                                -> Result<()> {
        check(sys::dat_comm_unique_id_broadcast_mpi(&mut self.0, root, comm, timeout_s))
    }
}

/// A communicator of M ranks.
pub struct Comm<'c> {
    raw: *mut sys::dat_comm,
    _ctx: PhantomData<&'c Context>,
}

impl<'c> Comm<'c> {
    /// The communicator of one rank.
    pub fn new_self(ctx: &'c Context) -> Result<Comm<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe { sys::dat_comm_create_self(&mut raw, ctx.as_ptr()) })?;
        Ok(Comm { raw, _ctx: PhantomData })
    }

    /// NCCL over `nranks` ranks joined by `id` (collective; CUDA contexts).
    pub fn nccl(ctx: &'c Context, nranks: i32, rank: i32, id: &UniqueId, opts: &CommOptions)
                -> Result<Comm<'c>> {
        let mut raw = ptr::null_mut();
        check(unsafe {
            sys::dat_comm_create_nccl(&mut raw, ctx.as_ptr(), nranks, rank, &id.0, opts)
        })?;
        Ok(Comm { raw, _ctx: PhantomData })
    }

    /// Over the ranks of an MPI communicator (collective).
    ///
    /// # Safety
    /// `comm` must be a valid communicator of an initialized MPI, and this
    /// `Comm` must be dropped before MPI_Finalize.
    #[cfg(feature = "mpi")]
    pub unsafe fn mpi(ctx: &'c Context, comm: sys::MPI_Comm, opts: &CommOptions)
                      -> Result<Comm<'c>> {
        let mut raw = ptr::null_mut();
        check(sys::dat_comm_create_mpi(&mut raw, ctx.as_ptr(), comm, opts))?;
        Ok(Comm { raw, _ctx: PhantomData })
    }

    /// NCCL over the ranks of an MPI communicator (collective; CUDA contexts):
    /// rank 0 makes the unique id, MPI moves it, every rank joins with its MPI
    /// rank (dat_comm_create_nccl_mpi).
    ///
    /// # Safety
    /// `comm` must be a valid communicator of an initialized MPI.
    #[cfg(feature = "mpi")]
    pub unsafe fn nccl_mpi(ctx: &'c Context, comm: sys::MPI_Comm, opts: &CommOptions)
                           -> Result<Comm<'c>> {
        let mut raw = ptr::null_mut();
        check(sys::dat_comm_create_nccl_mpi(&mut raw, ctx.as_ptr(), comm, opts))?;
        Ok(Comm { raw, _ctx: PhantomData })
    }

    /// The C handle, owned by this `Comm`.
    pub fn as_ptr(&self) -> *mut sys::dat_comm {
        self.raw
    }

    /// Rank of this process, 0 .. size − 1.
    pub fn rank(&self) -> Result<i32> {
        let mut r = 0;
        check(unsafe { sys::dat_comm_rank(self.raw, &mut r) })?;
        Ok(r)
    }

    /// Number of ranks M.
    pub fn size(&self) -> Result<i32> {
        let mut r = 0;
        check(unsafe { sys::dat_comm_size(self.raw, &mut r) })?;
        Ok(r)
    }

    /// In-place all-reduce (sum or mean) of a float32 tensor. Collective.
    pub fn allreduce(&mut self, t: &mut Tensor, op: sys::dat_reduction) -> Result<()> {
        check(unsafe { sys::dat_comm_allreduce(self.raw, t.as_ptr(), op) })
    }

    /// Broadcast of a tensor from rank `root`. Collective.
    pub fn broadcast(&mut self, t: &mut Tensor, root: i32) -> Result<()> {
        check(unsafe { sys::dat_comm_broadcast(self.raw, t.as_ptr(), root) })
    }

    /// `out` receives every rank's `x`, rank by rank. Collective.
    pub fn allgather(&mut self, x: &Tensor, out: &mut Tensor) -> Result<()> {
        check(unsafe { sys::dat_comm_allgather(self.raw, x.as_ptr(), out.as_ptr()) })
    }

    /// Quantized all-reduce (mean) of a float32 tensor, in place. Collective.
    pub fn allreduce_quantized(&mut self, t: &mut Tensor, q: &mut Quantizer, mode: QuantMode,
                               step: u64) -> Result<()> {
        check(unsafe {
            sys::dat_comm_allreduce_quantized(self.raw, t.as_ptr(), q.as_ptr(), mode.raw(), step)
        })
    }

    /// The model's gradient becomes its mean over the ranks (quantized with q).
    pub fn allreduce_grads(&mut self, model: &mut Model, q: Option<&mut Quantizer>,
                           mode: QuantMode, step: u64) -> Result<()> {
        let q = q.map(|q| q.as_ptr()).unwrap_or(ptr::null_mut());
        check(unsafe {
            sys::dat_comm_allreduce_grads(self.raw, model.as_ptr(), q, mode.raw(), step)
        })
    }

    /// Every rank takes rank `root`'s parameters and running statistics.
    pub fn broadcast_model(&mut self, model: &mut Model, root: i32) -> Result<()> {
        check(unsafe { sys::dat_comm_broadcast_model(self.raw, model.as_ptr(), root) })
    }

    /// The statistics: calls, payload bytes, seconds.
    pub fn stats(&self) -> Result<CommStats> {
        let mut s = sys::dat_comm_stats::default();
        check(unsafe { sys::dat_comm_get_stats(self.raw, &mut s) })?;
        Ok(CommStats { calls: s.calls, bytes_sent: s.bytes_sent, bytes_received: s.bytes_received,
                       seconds: s.seconds })
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&mut self) -> Result<()> {
        check(unsafe { sys::dat_comm_reset_stats(self.raw) })
    }

    /// Tears the communicator down after a failure; later collectives fail.
    pub fn abort(&mut self) -> Result<()> {
        check(unsafe { sys::dat_comm_abort(self.raw) })
    }
}

impl Drop for Comm<'_> {
    fn drop(&mut self) {
        unsafe { sys::dat_comm_destroy(self.raw) }
    }
}
