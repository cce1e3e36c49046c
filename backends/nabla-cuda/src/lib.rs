#![deny(missing_docs)]
//! The CUDA backend: GEMM through cuBLAS, every other op a CUDA kernel compiled once per
//! process by NVRTC (`kernels.cu`), all on one stream (NCCL's sums of a data-parallel run on a
//! second one, ordered against it by events), every buffer resident on the GPU.
//!
//! cudarc loads `libcuda`, `libcublas` and `libnvrtc` at run time (its `dynamic-loading`
//! feature), so this crate builds and its tests run on machines with no CUDA at all; opening the
//! backend there returns [`Error::Unavailable`] instead of panicking (cudarc panics when a
//! library is missing, so each one is looked for first).
//!
//! Row-major GEMM on column-major cuBLAS: a row-major `m × n` matrix is the column-major
//! `n × m` matrix of its transpose, so `C = op(A) op(B)` is computed as
//! `Cᵀ = op(B)ᵀ op(A)ᵀ` — the operands swapped, transposes passed as flags, nothing copied.

use std::sync::Arc;

use cudarc::cublas::{CudaBlas, Gemm as _, GemmConfig, sys as cublas_sys};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use nabla_core::backend::{Backend, Dims, Gemm, Owner, Trans};
use nabla_core::{Activation, Element, Error, Loss, Result, Update, check, dropout};

/// A buffer on the GPU, tagged with the backend instance (device, context and stream) that
/// allocated it. Every op refuses a buffer of another instance with
/// [`Error::ForeignBuffer`]: event tracking is off because all of an instance's work is on its one
/// stream (NCCL's, in a data-parallel run, is ordered against it by events of its own), so a
/// buffer of another stream or device would race or be used after it is freed.
///
/// Only [`Cuda`] makes these; a bare `CudaSlice` is not accepted:
///
/// ```compile_fail
/// fn takes(_: nabla_cuda::CudaBuf<f32>) {}
/// let slice: cudarc::driver::CudaSlice<f32> = unimplemented!();
/// takes(slice);
/// ```
pub struct CudaBuf<E> {
    slice: CudaSlice<E>,
    owner: Owner,
}

impl<E> std::fmt::Debug for CudaBuf<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuf").field("len", &self.slice.len()).field("owner", &self.owner).finish()
    }
}

impl<E> CudaBuf<E> {
    /// The backend instance that allocated it.
    pub fn owner(&self) -> Owner {
        self.owner
    }
}

pub mod compile;
#[cfg(feature = "nccl")]
pub mod nccl;
#[cfg(feature = "nccl")]
use nccl::Reducible;
/// Without NCCL every element type is "reducible": nothing reduces on the device.
#[cfg(not(feature = "nccl"))]
pub trait Reducible {}
#[cfg(not(feature = "nccl"))]
impl<T> Reducible for T {}

use compile::{MAX_LOSS_BLOCKS, REDUCE_THREADS, ROWS_BLOCK, ROWS_PER_CHUNK, SCRATCH, THREADS, WARP};

/// A GPU found on this machine.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// The device number (`--device N`, `cuda:N`).
    pub ordinal: usize,
    /// The driver's name for it.
    pub name: String,
    /// Total memory.
    pub memory_bytes: usize,
    /// `(major, minor)`.
    pub compute_capability: (i32, i32),
}

/// Why CUDA cannot be used here, or `None` when the driver, cuBLAS and NVRTC libraries load.
pub fn missing_library() -> Option<&'static str> {
    // SAFETY: these only try to open the shared libraries.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Some("the NVIDIA driver library (libcuda) was not found; is there a GPU and its driver?");
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Some(
                "cuBLAS (libcublas) was not found; install the CUDA toolkit's libraries or add them to LD_LIBRARY_PATH",
            );
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Some(
                "NVRTC (libnvrtc) was not found; install the CUDA toolkit's libraries or add them to LD_LIBRARY_PATH",
            );
        }
    }
    None
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::Unavailable { backend: "cuda".into(), reason: reason.into() }
}

fn driver_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::backend("cuda", format!("{what}: {e:?}"))
}

/// Whether this machine has a CUDA driver and at least one device: the one condition under which
/// the device tests may skip. (A missing cuBLAS or NVRTC, a kernel that does not compile or load,
/// is a failure where there is a device.)
pub fn device_present() -> bool {
    // SAFETY: only tries to open the driver library.
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    driver && CudaContext::device_count().is_ok_and(|n| n > 0)
}

/// The GPUs of this machine (an error says why there are none).
pub fn devices() -> Result<Vec<DeviceInfo>> {
    if let Some(reason) = missing_library() {
        return Err(unavailable(reason));
    }
    let count = CudaContext::device_count().map_err(|e| unavailable(format!("the driver reports no device: {e:?}")))?;
    if count <= 0 {
        return Err(unavailable("no CUDA device found"));
    }
    (0..count as usize)
        .map(|ordinal| {
            let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("opening the device", e))?;
            Ok(DeviceInfo {
                ordinal,
                name: ctx.name().map_err(|e| driver_error("device name", e))?,
                memory_bytes: ctx.total_mem().map_err(|e| driver_error("device memory", e))?,
                compute_capability: ctx.compute_capability().map_err(|e| driver_error("compute capability", e))?,
            })
        })
        .collect()
}

/// Defines [`Kernels`] (one function per name, loaded as `NAME_f32` or `NAME_f64`) and
/// [`KERNEL_NAMES`] from one list.
macro_rules! kernels {
    ($($name:ident),* $(,)?) => {
        /// The kernels of one element type.
        #[derive(Debug)]
        pub struct Kernels {
            $($name: CudaFunction,)*
        }

        /// The names of the kernels the backend loads (each as `NAME_f32` and `NAME_f64`).
        pub const KERNEL_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Kernels {
            fn load(module: &Arc<CudaModule>, suffix: &str) -> Result<Kernels> {
                let f = |name: &str| {
                    module
                        .load_function(&format!("{name}_{suffix}"))
                        .map_err(|e| driver_error(&format!("loading kernel {name}_{suffix}"), e))
                };
                Ok(Kernels { $($name: f(stringify!($name))?,)* })
            }
        }
    };
}

kernels!(
    hadamard,
    bias_add,
    activate,
    bias_activate,
    activate_grad,
    softmax,
    softmax_grad,
    sum_rows,
    sum_rows_finish,
    loss,
    loss_finish,
    update,
    dropout_mask,
);

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    f32: Kernels,
    f64: Kernels,
    placeholder_f32: CudaSlice<f32>,
    placeholder_f64: CudaSlice<f64>,
    /// The blocks' partial sums of `loss` and `sum_rows` ([`SCRATCH`] elements each; one stream,
    /// so one op uses them at a time).
    scratch_f32: CudaSlice<f32>,
    scratch_f64: CudaSlice<f64>,
    name: String,
    tf32: bool,
    /// The identity of this instance's buffers.
    owner: Owner,
    /// The NCCL communicator of a data-parallel run, once joined ([`Backend::join_ranks`]).
    #[cfg(feature = "nccl")]
    nccl: std::sync::OnceLock<nccl::Communicator>,
}

/// The CUDA backend on one device (cheap to clone: a shared handle).
#[derive(Clone)]
pub struct Cuda {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cuda({})", self.inner.name)
    }
}

/// How to open the backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct CudaOptions {
    /// Device ordinal.
    pub device: usize,
    /// Let cuBLAS use TF32 tensor cores for f32 GEMMs (faster, ~10-bit mantissa products).
    pub tf32: bool,
}

impl Cuda {
    /// Opens device `options.device`, creates its stream and cuBLAS handle, and compiles the
    /// kernels. Fails with [`Error::Unavailable`] when there is no driver or device.
    pub fn new(options: CudaOptions) -> Result<Cuda> {
        if let Some(reason) = missing_library() {
            return Err(unavailable(reason));
        }
        let count =
            CudaContext::device_count().map_err(|e| unavailable(format!("the driver reports no device: {e:?}")))?;
        if count <= 0 {
            return Err(unavailable("no CUDA device found"));
        }
        if options.device >= count as usize {
            return Err(unavailable(format!(
                "device {} does not exist; this machine has {count} (0..{})",
                options.device,
                count - 1
            )));
        }
        let ctx = CudaContext::new(options.device).map_err(|e| driver_error("opening the device", e))?;
        // Every op on one stream (NCCL's, in a data-parallel run, ordered against it by events
        // of its own), so cudarc's per-buffer event tracking is not needed (and would put event
        // records into every launch).
        // SAFETY: every buffer and launch of this backend uses the one stream created below;
        // NCCL's stream waits for it before each sum and it waits for NCCL's before the work
        // that follows the sums (`nccl::Communicator`).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver_error("creating a stream", e))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| driver_error("creating the cuBLAS handle", e))?;
        if options.tf32 {
            // SAFETY: a valid handle and a valid math mode.
            let status = unsafe {
                cublas_sys::cublasSetMathMode(*blas.handle(), cublas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH)
            };
            if status != cublas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return Err(driver_error("enabling TF32", status));
            }
        }
        let (major, minor) = ctx.compute_capability().map_err(|e| driver_error("compute capability", e))?;
        let module = ctx.load_module(compile::for_device(major, minor)?).map_err(compile::load_failure)?;
        let name = format!("cuda:{} ({})", options.device, ctx.name().unwrap_or_default());
        let placeholder_f32 = stream.alloc_zeros::<f32>(1).map_err(|e| driver_error("allocating", e))?;
        let placeholder_f64 = stream.alloc_zeros::<f64>(1).map_err(|e| driver_error("allocating", e))?;
        let scratch_f32 = stream.alloc_zeros::<f32>(SCRATCH).map_err(|e| driver_error("allocating", e))?;
        let scratch_f64 = stream.alloc_zeros::<f64>(SCRATCH).map_err(|e| driver_error("allocating", e))?;
        let inner = Inner {
            scratch_f32,
            scratch_f64,
            f32: Kernels::load(&module, "f32")?,
            f64: Kernels::load(&module, "f64")?,
            placeholder_f32,
            placeholder_f64,
            ctx,
            stream,
            blas,
            name,
            tf32: options.tf32,
            owner: Owner::new(),
            #[cfg(feature = "nccl")]
            nccl: std::sync::OnceLock::new(),
        };
        Ok(Cuda { inner: Arc::new(inner) })
    }

    /// Whether TF32 tensor-core math is on for f32 GEMMs.
    pub fn tf32(&self) -> bool {
        self.inner.tf32
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// Refuses any operand that another instance allocated.
    fn own(&self, op: &'static str, operands: &[(&str, Owner)]) -> Result<()> {
        self.inner.owner.check(|| self.inner.name.clone(), op, operands)
    }
}

/// Launches kernel `$f` with configuration `$cfg` and the given arguments, in the order and
/// types of its C signature.
macro_rules! launch {
    ($self:expr, $f:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        let mut builder = $self.inner.stream.launch_builder($f);
        $( builder.arg($arg); )*
        // SAFETY: the arguments match the kernel's C signature (order and types), and operand
        // sizes were checked against the element counts the kernel is given.
        unsafe { builder.launch($cfg) }.map(|_| ()).map_err(|e| driver_error("kernel launch", e))
    }};
}

/// A grid-stride launch over `n` elements.
fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// Rows × columns: x strides over columns (a block as wide as the columns need, up to
/// [`THREADS`]), y over rows.
fn rows_by_columns(d: Dims) -> LaunchConfig {
    let warp = WARP as usize;
    let x = (d.cols.div_ceil(warp) * warp).clamp(warp, THREADS as usize) as u32;
    let blocks_x = d.cols.div_ceil(x as usize).clamp(1, 65_535) as u32;
    LaunchConfig { grid_dim: (blocks_x, d.rows.clamp(1, 65_535) as u32, 1), block_dim: (x, 1, 1), shared_mem_bytes: 0 }
}

/// One warp per row (row-wise softmax).
fn per_row(rows: usize) -> LaunchConfig {
    let blocks = (rows * WARP as usize).div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// An element type the kernels and cuBLAS handle.
pub trait CudaFloat: Element + DeviceRepr + ValidAsZeroBits + Reducible {
    /// cuBLAS GEMM for this type.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        b: &CudaBlas,
        cfg: GemmConfig<Self>,
        a: &CudaSlice<Self>,
        x: &CudaSlice<Self>,
        c: &mut CudaSlice<Self>,
    ) -> Result<()>;
    /// This type's kernels.
    fn kernels(c: &Cuda) -> &Kernels;
    /// A one-element buffer passed for kernel arguments a call does not use.
    fn placeholder(c: &Cuda) -> &CudaSlice<Self>;
    /// The scratch buffer for blocks' partial sums.
    fn scratch(c: &Cuda) -> &CudaSlice<Self>;
}

macro_rules! cuda_float {
    ($t:ty, $field:ident, $placeholder:ident, $scratch:ident) => {
        impl CudaFloat for $t {
            fn gemm(
                b: &CudaBlas,
                cfg: GemmConfig<$t>,
                a: &CudaSlice<$t>,
                x: &CudaSlice<$t>,
                c: &mut CudaSlice<$t>,
            ) -> Result<()> {
                // SAFETY: the operand buffers were checked to hold the matrices the dimensions and
                // leading dimensions describe.
                unsafe { b.gemm(cfg, a, x, c) }.map_err(|e| driver_error("cuBLAS gemm", e))
            }
            fn kernels(c: &Cuda) -> &Kernels {
                &c.inner.$field
            }
            fn placeholder(c: &Cuda) -> &CudaSlice<$t> {
                &c.inner.$placeholder
            }
            fn scratch(c: &Cuda) -> &CudaSlice<$t> {
                &c.inner.$scratch
            }
        }
    };
}

cuda_float!(f32, f32, placeholder_f32, scratch_f32);
cuda_float!(f64, f64, placeholder_f64, scratch_f64);

fn op(t: Trans) -> cublas_sys::cublasOperation_t {
    match t {
        Trans::No => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
        Trans::Yes => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
    }
}

fn dim(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::shape("gemm", format!("{what} = {v} exceeds cuBLAS's 32-bit sizes")))
}

impl<E: CudaFloat> Backend<E> for Cuda {
    type Buf = CudaBuf<E>;

    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn alloc(&self, len: usize) -> Result<CudaBuf<E>> {
        let slice = self.inner.stream.alloc_zeros::<E>(len.max(1)).map_err(|e| {
            Error::backend("cuda", format!("allocating {len} elements failed (out of GPU memory?): {e:?}"))
        })?;
        Ok(CudaBuf { slice, owner: self.inner.owner })
    }

    fn len(&self, buf: &CudaBuf<E>) -> usize {
        buf.slice.len()
    }

    fn write(&self, host: &[E], buf: &mut CudaBuf<E>) -> Result<()> {
        check::elementwise("write", host.len(), &[("buffer", buf.slice.len())])?;
        self.own("write", &[("buffer", buf.owner)])?;
        if host.is_empty() {
            return Ok(());
        }
        let mut dst = buf.slice.slice_mut(..host.len());
        self.inner.stream.memcpy_htod(host, &mut dst).map_err(|e| driver_error("copy to the device", e))
    }

    fn download(&self, buf: &CudaBuf<E>, host: &mut [E]) -> Result<()> {
        check::elementwise("download", host.len(), &[("buffer", buf.slice.len())])?;
        self.own("download", &[("buffer", buf.owner)])?;
        if host.is_empty() {
            return Ok(());
        }
        let src = buf.slice.slice(..host.len());
        self.inner.stream.memcpy_dtoh(&src, host).map_err(|e| driver_error("copy to the host", e))?;
        self.inner.stream.synchronize().map_err(|e| driver_error("synchronize", e))
    }

    fn synchronize(&self) -> Result<()> {
        #[cfg(feature = "nccl")]
        if let Some(comm) = self.inner.nccl.get() {
            comm.synchronize()?;
        }
        self.inner.stream.synchronize().map_err(|e| driver_error("synchronize (a kernel failed?)", e))
    }

    /// Joins an NCCL communicator over `comm`'s ranks, once per backend.
    #[cfg(feature = "nccl")]
    fn join_ranks(&self, comm: &dyn nabla_core::distributed::Collective) -> Result<bool> {
        if self.inner.nccl.get().is_none() {
            let joined = nccl::Communicator::join(self.inner.stream.clone(), comm)?;
            // One communicator per backend and one caller at a time: nothing else sets it
            // meanwhile.
            let _ = self.inner.nccl.set(joined);
        }
        Ok(true)
    }

    #[cfg(feature = "nccl")]
    fn sum_over_ranks(&self, bufs: &mut [&mut CudaBuf<E>]) -> Result<()> {
        let comm = self.inner.nccl.get().ok_or_else(|| {
            Error::invalid("sum_over_ranks", "this CUDA backend has not joined the ranks (join_ranks) yet")
        })?;
        for b in bufs.iter() {
            self.own("sum_over_ranks", &[("buffer", b.owner)])?;
        }
        comm.sum(bufs.iter_mut().map(|b| &mut b.slice))
    }

    #[cfg(feature = "nccl")]
    fn wait_for_sums(&self) -> Result<()> {
        self.inner.nccl.get().map_or(Ok(()), nccl::Communicator::wait)
    }

    fn gemm(&self, s: Gemm, alpha: E, a: &CudaBuf<E>, b: &CudaBuf<E>, beta: E, c: &mut CudaBuf<E>) -> Result<()> {
        check::gemm(&s, a.slice.len(), b.slice.len(), c.slice.len())?;
        self.own("gemm", &[("A", a.owner), ("B", b.owner), ("C", c.owner)])?;
        if s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let Gemm { ta, tb, m, n, k } = s;
        let cfg = GemmConfig {
            transa: op(tb),
            transb: op(ta),
            m: dim(n, "n")?,
            n: dim(m, "m")?,
            k: dim(k, "k")?,
            alpha,
            lda: dim(if tb == Trans::No { n } else { k }.max(1), "ldb")?,
            ldb: dim(if ta == Trans::No { k } else { m }.max(1), "lda")?,
            beta,
            ldc: dim(n.max(1), "ldc")?,
        };
        E::gemm(&self.inner.blas, cfg, &b.slice, &a.slice, &mut c.slice)
    }

    fn copy(&self, len: usize, src: &CudaBuf<E>, dst: &mut CudaBuf<E>) -> Result<()> {
        check::elementwise("copy", len, &[("src", src.slice.len()), ("dst", dst.slice.len())])?;
        self.own("copy", &[("src", src.owner), ("dst", dst.owner)])?;
        if len == 0 {
            return Ok(());
        }
        let (s, mut d) = (src.slice.slice(..len), dst.slice.slice_mut(..len));
        self.inner.stream.memcpy_dtod(&s, &mut d).map_err(|e| driver_error("device copy", e))
    }

    fn hadamard(&self, len: usize, x: &CudaBuf<E>, y: &mut CudaBuf<E>) -> Result<()> {
        check::elementwise("hadamard", len, &[("x", x.slice.len()), ("y", y.slice.len())])?;
        self.own("hadamard", &[("x", x.owner), ("y", y.owner)])?;
        let n = len as u64;
        launch!(self, &E::kernels(self).hadamard, elementwise(len), &n, &x.slice, &mut y.slice)
    }

    fn bias_add(&self, d: Dims, bias: &CudaBuf<E>, z: &mut CudaBuf<E>) -> Result<()> {
        check::bias("bias_add", d, bias.slice.len())?;
        check::matrices("bias_add", d, &[("z", z.slice.len())])?;
        self.own("bias_add", &[("bias", bias.owner), ("z", z.owner)])?;
        let (rows, cols) = (d.rows as u64, d.cols as u64);
        launch!(self, &E::kernels(self).bias_add, rows_by_columns(d), &rows, &cols, &bias.slice, &mut z.slice)
    }

    fn activate(&self, f: Activation, d: Dims, z: &CudaBuf<E>, a: &mut CudaBuf<E>) -> Result<()> {
        check::matrices("activate", d, &[("z", z.slice.len()), ("a", a.slice.len())])?;
        self.own("activate", &[("z", z.owner), ("a", a.owner)])?;
        let (rows, cols) = (d.rows as u64, d.cols as u64);
        if f.is_row_wise() {
            return launch!(self, &E::kernels(self).softmax, per_row(d.rows), &rows, &cols, &z.slice, &mut a.slice);
        }
        let (n, code, alpha) = (d.len() as u64, f.code() as i32, E::of(f.alpha()));
        launch!(self, &E::kernels(self).activate, elementwise(d.len()), &n, &code, &alpha, &z.slice, &mut a.slice)
    }

    fn bias_add_activate(
        &self,
        f: Activation,
        d: Dims,
        bias: &CudaBuf<E>,
        z: &mut CudaBuf<E>,
        a: &mut CudaBuf<E>,
    ) -> Result<()> {
        if f.is_row_wise() {
            self.bias_add(d, bias, z)?;
            return self.activate(f, d, z, a);
        }
        check::bias("bias_add_activate", d, bias.slice.len())?;
        check::matrices("bias_add_activate", d, &[("z", z.slice.len()), ("a", a.slice.len())])?;
        self.own("bias_add_activate", &[("bias", bias.owner), ("z", z.owner), ("a", a.owner)])?;
        let (rows, cols, code, alpha) = (d.rows as u64, d.cols as u64, f.code() as i32, E::of(f.alpha()));
        let (b, z, a) = (&bias.slice, &mut z.slice, &mut a.slice);
        launch!(self, &E::kernels(self).bias_activate, rows_by_columns(d), &rows, &cols, &code, &alpha, b, z, a)
    }

    fn activate_grad(
        &self,
        f: Activation,
        d: Dims,
        z: &CudaBuf<E>,
        a: &CudaBuf<E>,
        delta: &mut CudaBuf<E>,
    ) -> Result<()> {
        check::matrices(
            "activate_grad",
            d,
            &[("z", z.slice.len()), ("a", a.slice.len()), ("delta", delta.slice.len())],
        )?;
        self.own("activate_grad", &[("z", z.owner), ("a", a.owner), ("delta", delta.owner)])?;
        let (z, a, delta) = (&z.slice, &a.slice, &mut delta.slice);
        if f.is_row_wise() {
            let (rows, cols) = (d.rows as u64, d.cols as u64);
            return launch!(self, &E::kernels(self).softmax_grad, per_row(d.rows), &rows, &cols, a, delta);
        }
        let (n, code, alpha) = (d.len() as u64, f.code() as i32, E::of(f.alpha()));
        launch!(self, &E::kernels(self).activate_grad, elementwise(d.len()), &n, &code, &alpha, z, a, delta)
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &CudaBuf<E>, beta: E, out: &mut CudaBuf<E>) -> Result<()> {
        check::matrices("sum_rows", d, &[("x", x.slice.len())])?;
        check::bias("sum_rows", d, out.slice.len())?;
        self.own("sum_rows", &[("x", x.owner), ("out", out.owner)])?;
        // Many rows are split into chunks summed by blocks of their own (grid y), whose partial
        // sums a second kernel adds in chunk order; as many chunks as the scratch holds.
        let chunks = d.rows.div_ceil(ROWS_PER_CHUNK).min(SCRATCH / d.cols.max(1)).clamp(1, 65_535);
        let chunk = d.rows.div_ceil(chunks) as u64;
        let (rows, cols, scratch) = (d.rows as u64, d.cols as u64, E::scratch(self));
        let cfg = LaunchConfig {
            grid_dim: (d.cols.div_ceil(ROWS_BLOCK.0 as usize).clamp(1, 65_535) as u32, chunks as u32, 1),
            block_dim: (ROWS_BLOCK.0, ROWS_BLOCK.1, 1),
            shared_mem_bytes: 0,
        };
        let (x, out) = (&x.slice, &mut out.slice);
        launch!(self, &E::kernels(self).sum_rows, cfg, &rows, &cols, &chunk, &alpha, x, &beta, &mut *out, scratch)?;
        if chunks > 1 {
            let n = chunks as u64;
            launch!(
                self,
                &E::kernels(self).sum_rows_finish,
                elementwise(d.cols),
                &cols,
                &n,
                &alpha,
                scratch,
                &beta,
                out
            )?;
        }
        Ok(())
    }

    fn loss(
        &self,
        l: Loss,
        d: Dims,
        out: &CudaBuf<E>,
        target: &CudaBuf<E>,
        grad: &mut CudaBuf<E>,
        stats: &mut CudaBuf<E>,
    ) -> Result<()> {
        check::matrices(
            "loss",
            d,
            &[("output", out.slice.len()), ("target", target.slice.len()), ("grad", grad.slice.len())],
        )?;
        check::stats(stats.slice.len())?;
        self.own(
            "loss",
            &[("output", out.owner), ("target", target.owner), ("grad", grad.owner), ("stats", stats.owner)],
        )?;
        let (out, target, grad, stats) = (&out.slice, &target.slice, &mut grad.slice, &mut stats.slice);
        let (code, param, rows, cols) = (l.code() as i32, E::of(l.param()), d.rows as u64, d.cols as u64);
        // Rows over the whole grid, each block's sums into scratch, then one block adds them in
        // block order (deterministic).
        let blocks = d.rows.div_ceil(REDUCE_THREADS as usize).clamp(1, MAX_LOSS_BLOCKS);
        let cfg =
            LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (REDUCE_THREADS, 1, 1), shared_mem_bytes: 0 };
        let scratch = E::scratch(self);
        launch!(self, &E::kernels(self).loss, cfg, &code, &param, &rows, &cols, out, target, grad, scratch)?;
        let finish = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (REDUCE_THREADS, 1, 1), shared_mem_bytes: 0 };
        let n = blocks as u64;
        launch!(self, &E::kernels(self).loss_finish, finish, &code, &rows, &cols, &n, scratch, stats)
    }

    fn update(
        &self,
        u: &Update,
        len: usize,
        w: &mut CudaBuf<E>,
        g: &CudaBuf<E>,
        state: &mut [&mut CudaBuf<E>],
    ) -> Result<()> {
        check::elementwise("update", len, &[("w", w.slice.len()), ("g", g.slice.len())])?;
        check::state(len, u.rule.state_count(), state.iter().map(|s| s.slice.len()))?;
        self.own("update", &[("w", w.owner), ("g", g.owner)])?;
        for s in state.iter() {
            self.own("update", &[("state", s.owner)])?;
        }
        let (c1, c2) = u.adam_corrections();
        let p = u.rule.params();
        let (n, rule) = (len as u64, u.rule.code() as i32);
        let [lr, l2, decay, p0, p1, p2, p3, c1, c2] = [u.lr, u.l2, u.decay, p[0], p[1], p[2], p[3], c1, c2].map(E::of);
        // Rules with fewer state tensors get a stand-in buffer their kernels never touch.
        let placeholder = E::placeholder(self);
        let (s0, s1) = match state {
            [] => (placeholder, placeholder),
            [a] => (&a.slice, placeholder),
            [a, b, ..] => (&a.slice, &b.slice),
        };
        launch!(
            self,
            &E::kernels(self).update,
            elementwise(len),
            &n,
            &rule,
            &lr,
            &l2,
            &decay,
            &p0,
            &p1,
            &p2,
            &p3,
            &c1,
            &c2,
            &w.slice,
            &g.slice,
            s0,
            s1
        )
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut CudaBuf<E>) -> Result<()> {
        check::elementwise("dropout_mask", len, &[("mask", mask.slice.len())])?;
        self.own("dropout_mask", &[("mask", mask.owner)])?;
        let (n, threshold, kept) = (len as u64, dropout::threshold(rate), E::of(1.0 / (1.0 - rate)));
        let m = &mut mask.slice;
        launch!(self, &E::kernels(self).dropout_mask, elementwise(len), &n, &threshold, &seed, &first, &kept, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compile::KERNELS;
    use nabla_core::Rule;

    /// Every activation, loss and rule the backend can send has a branch of its own in
    /// kernels.cu, under the name the generated prelude defines (the enums' `code_name`).
    #[test]
    fn every_rust_code_has_its_kernel_branch() {
        let source = compile::source();
        for f in Activation::ALL {
            let name = format!("ACT_{}", f.code_name());
            assert!(source.contains(&format!("#define {name} {} ", f.code())), "the prelude lacks {name}");
            // Softmax is row-wise: kernels of its own, not a code in a switch.
            if !f.is_row_wise() {
                assert!(KERNELS.contains(&format!("case {name}:")), "kernels.cu has no `case {name}:`");
            }
        }
        for l in Loss::ALL {
            let name = format!("LOSS_{}", l.code_name());
            assert!(KERNELS.contains(&format!("l == {name}")), "the loss kernel has no branch for {name}");
        }
        for r in Rule::ALL {
            let name = format!("RULE_{}", r.code_name());
            assert!(KERNELS.contains(&format!("case {name}:")), "kernels.cu has no `case {name}:`");
        }
        // No code is defined by hand in kernels.cu (the prelude defines them all).
        assert!(
            !KERNELS.contains("#define ACT_")
                && !KERNELS.contains("#define LOSS_")
                && !KERNELS.contains("#define RULE_")
        );
        // An unknown code falls to a default that yields NaN, never to another formula.
        assert_eq!(KERNELS.matches("default: return (T)NABLA_NAN;").count(), 2);
        assert!(KERNELS.contains("default: wi = (T)NABLA_NAN;"));
    }

    #[test]
    fn no_device_is_an_error_not_a_panic_and_a_device_must_open() {
        if device_present() {
            // Where there is a device, opening it (cuBLAS, NVRTC, kernels) must work.
            let c = Cuda::new(CudaOptions::default()).expect("a CUDA device is present: the backend must open");
            eprintln!("CUDA present here: {c:?}");
        } else {
            let e = Cuda::new(CudaOptions::default()).unwrap_err();
            assert!(matches!(e, Error::Unavailable { .. }), "{e}");
            eprintln!("skipped: no CUDA device ({e})");
        }
        let e = Cuda::new(CudaOptions { device: 999, tf32: false }).unwrap_err().to_string();
        assert!(e.contains("cuda"), "{e}");
    }

    /// NVRTC is present where `make test` installed it (`NABLA_REQUIRE_NVRTC=1`): then a missing
    /// library fails the test instead of skipping it.
    fn nvrtc_here() -> bool {
        // SAFETY: only tries to open the library.
        let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
        if !present {
            assert!(
                std::env::var_os("NABLA_REQUIRE_NVRTC").is_none(),
                "NABLA_REQUIRE_NVRTC is set but libnvrtc does not load (LD_LIBRARY_PATH?)"
            );
            eprintln!("skipped: NVRTC (libnvrtc.so.13) not found; `make test` installs it from PyPI");
        }
        present
    }

    /// kernels.cu compiles through the backend's own path (source with the launch constants,
    /// the same options) for compute_80 and compute_90, every kernel the backend loads is in the
    /// PTX in both element types, and sm_90 CUBIN is produced.
    #[test]
    fn nvrtc_compiles_every_kernel() {
        if !nvrtc_here() {
            return;
        }
        for arch in ["compute_80", "compute_90"] {
            let ptx = compile::ptx(arch).unwrap_or_else(|e| panic!("{e}"));
            for name in KERNEL_NAMES {
                for t in ["f32", "f64"] {
                    assert!(ptx.contains(&format!(".entry {name}_{t}(")), "{arch}: kernel {name}_{t} missing");
                }
            }
        }
        let cubin = compile::cubin("sm_90").unwrap().expect("NVRTC 13 makes sm_90 CUBIN");
        assert!(cubin.starts_with(b"\x7fELF"), "CUBIN is an ELF image");
        assert!(compile::cubin("sm_1").unwrap().is_none(), "an unknown architecture falls back to PTX");
        eprintln!("NVRTC {:?}", compile::nvrtc_version());
    }

    /// ptxas (from `nvidia-cuda-nvcc`, `NABLA_PTXAS`) assembles the PTX for sm_90 with no
    /// register spills; prints each kernel's registers (the table in docs/performance.md).
    #[test]
    fn ptxas_assembles_sm_90_without_spills() {
        let Some(ptxas) = std::env::var_os("NABLA_PTXAS") else {
            assert!(
                std::env::var_os("NABLA_REQUIRE_NVRTC").is_none(),
                "NABLA_REQUIRE_NVRTC is set but NABLA_PTXAS is not"
            );
            return eprintln!("skipped: NABLA_PTXAS not set (`make test` sets it)");
        };
        if !nvrtc_here() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("nabla-ptxas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kernels.ptx");
        std::fs::write(&file, compile::ptx("compute_90").unwrap()).unwrap();
        let out = std::process::Command::new(&ptxas)
            .args(["-arch=sm_90", "-v", "-o"])
            .arg(dir.join("kernels.cubin"))
            .arg(&file)
            .output()
            .expect("runs ptxas");
        let _ = std::fs::remove_dir_all(&dir);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ptxas failed:\n{log}");
        let mut kernel = String::new();
        for line in log.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                kernel = rest.split('\'').next().unwrap_or_default().to_string();
            }
            if line.contains("spill stores") {
                let spills: Vec<u64> = line
                    .split(',')
                    .filter(|p| p.contains("spill"))
                    .filter_map(|p| p.split_whitespace().next()?.parse().ok())
                    .collect();
                assert!(spills.iter().all(|&s| s == 0), "{kernel} spills: {line}");
            }
            if let Some(regs) = line.split("Used ").nth(1) {
                eprintln!("{kernel:<24} {}", regs.split(',').next().unwrap_or_default());
            }
        }
    }
}
