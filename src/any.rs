//! Run-time backend choice: [`AnyBackend`] is an enum over the backends compiled in (and plugins
//! loaded at run time) that implements [`Backend`] by `match`, so generic code stays generic and
//! `--backend NAME` picks one when the program runs.

use std::fmt;
use std::str::FromStr;

use nabla_core::backend::{Backend, Dims, Gemm, GemmProvider};
use nabla_core::distributed::Collective;
use nabla_core::{Activation, Element, Error, Loss, Reference, Result, Update};

#[cfg(feature = "cuda")]
use nabla_cuda::{Cuda, CudaOptions};
#[cfg(feature = "openblas")]
use nabla_openblas::OpenBlas;
#[cfg(feature = "plugins")]
use nabla_plugin::{PluginBackend, PluginBuf};

/// The per-backend element bounds that [`AnyElement`] gathers (empty when a backend is not
/// compiled in).
#[doc(hidden)]
pub mod bounds {
    #[cfg(feature = "cuda")]
    pub use nabla_cuda::CudaFloat as CudaBound;
    #[cfg(feature = "plugins")]
    pub use nabla_plugin::PluginFloat as PluginBound;

    /// Nothing to require: CUDA is not compiled in.
    #[cfg(not(feature = "cuda"))]
    pub trait CudaBound {}
    #[cfg(not(feature = "cuda"))]
    impl<T> CudaBound for T {}

    /// Nothing to require: plugins are not compiled in.
    #[cfg(not(feature = "plugins"))]
    pub trait PluginBound {}
    #[cfg(not(feature = "plugins"))]
    impl<T> PluginBound for T {}
}

/// The element types every compiled-in backend supports (`f32` and `f64`).
pub trait AnyElement: Element + bounds::CudaBound + bounds::PluginBound {}
impl AnyElement for f32 {}
impl AnyElement for f64 {}

/// A buffer of whichever backend made it.
#[derive(Debug)]
pub enum AnyBuf<E: AnyElement> {
    /// A host vector (the reference and OpenBLAS backends).
    Host(Vec<E>),
    /// GPU memory.
    #[cfg(feature = "cuda")]
    Cuda(nabla_cuda::CudaBuf<E>),
    /// A plugin's buffer.
    #[cfg(feature = "plugins")]
    Plugin(PluginBuf<E>),
}

/// A backend chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyBackend {
    /// Plain Rust loops; the oracle of the tests.
    Reference(Reference),
    /// OpenBLAS on the CPU.
    #[cfg(feature = "openblas")]
    OpenBlas(OpenBlas),
    /// cuBLAS and CUDA kernels on an NVIDIA GPU.
    #[cfg(feature = "cuda")]
    Cuda(Cuda),
    /// A backend loaded at run time from a shared library.
    #[cfg(feature = "plugins")]
    Plugin(PluginBackend),
}

/// How to open a backend: the settings that only some backends use.
#[derive(Clone, Debug, Default)]
pub struct BackendOptions {
    /// CPU threads (OpenBLAS); `None` means one per core.
    pub threads: Option<usize>,
    /// TF32 tensor-core math for f32 GEMMs (CUDA).
    pub tf32: bool,
    /// Which GEMM computes the large products (OpenBLAS backend).
    pub gemm: GemmProvider,
}

/// The `--backend` values, for parsing and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendName {
    /// `reference`.
    Reference,
    /// `openblas`.
    OpenBlas,
    /// `cuda:N` (device `N`), or `cuda`: device 0, or under an MPI launcher the device of the
    /// process's local rank ([`nabla_core::distributed::local_rank`]).
    Cuda(usize),
    /// `plugin:PATH`: a shared library at an explicit path.
    Plugin(std::path::PathBuf),
}

/// The accepted `--backend` values.
pub const BACKEND_NAMES: &str = "reference, openblas, cuda[:DEVICE], plugin:PATH";

impl FromStr for BackendName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" | "ref" => Ok(BackendName::Reference),
            "openblas" | "cpu" => Ok(BackendName::OpenBlas),
            // Under a launcher, each rank of a node takes its own GPU.
            "cuda" | "gpu" => Ok(BackendName::Cuda(nabla_core::distributed::local_rank())),
            _ if s.starts_with("plugin:") && s.len() > "plugin:".len() => {
                Ok(BackendName::Plugin(s["plugin:".len()..].into()))
            }
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(device)) => Ok(BackendName::Cuda(device)),
                _ => Err(Error::invalid("backend", format!("`{s}`; accepted: {BACKEND_NAMES}"))),
            },
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendName::Reference => f.write_str("reference"),
            BackendName::OpenBlas => f.write_str("openblas"),
            BackendName::Cuda(d) => write!(f, "cuda:{d}"),
            BackendName::Plugin(p) => write!(f, "plugin:{}", p.display()),
        }
    }
}

impl AnyBackend {
    /// Opens the backend `name` with `options`; an error says why it is not usable here.
    pub fn open(name: &BackendName, options: &BackendOptions) -> Result<AnyBackend> {
        // Only the OpenBLAS and CUDA backends take options.
        #[cfg(not(any(feature = "openblas", feature = "cuda")))]
        let _ = options;
        match name {
            BackendName::Reference => Ok(AnyBackend::Reference(Reference)),
            #[cfg(feature = "openblas")]
            BackendName::OpenBlas => Ok(AnyBackend::OpenBlas(OpenBlas::with_gemm(options.threads, options.gemm)?)),
            #[cfg(not(feature = "openblas"))]
            BackendName::OpenBlas => Err(not_compiled("openblas", "openblas")),
            #[cfg(feature = "cuda")]
            BackendName::Cuda(device) => {
                Ok(AnyBackend::Cuda(Cuda::new(CudaOptions { device: *device, tf32: options.tf32 })?))
            }
            #[cfg(not(feature = "cuda"))]
            BackendName::Cuda(_) => Err(not_compiled("cuda", "cuda")),
            #[cfg(feature = "plugins")]
            BackendName::Plugin(path) => Ok(AnyBackend::Plugin(PluginBackend::load(path)?)),
            #[cfg(not(feature = "plugins"))]
            BackendName::Plugin(_) => Err(not_compiled("plugin", "plugins")),
        }
    }

    /// Parses and opens `--backend` text.
    pub fn from_name(name: &str, options: &BackendOptions) -> Result<AnyBackend> {
        AnyBackend::open(&name.parse()?, options)
    }
}

/// The error for a backend left out of this build.
#[cfg(not(all(feature = "openblas", feature = "cuda", feature = "plugins")))]
fn not_compiled(backend: &str, feature: &str) -> Error {
    Error::Unavailable {
        backend: backend.into(),
        reason: format!("this build of nabla was compiled without it; rebuild with `--features {feature}`"),
    }
}

/// A backend's view of [`AnyBuf`]: which variant holds its buffers.
trait Native<E: AnyElement>: Backend<E> {
    fn wrap(buf: Self::Buf) -> AnyBuf<E>;
    fn buf<'a>(&self, buf: &'a AnyBuf<E>) -> Result<&'a Self::Buf>;
    fn buf_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Result<&'a mut Self::Buf>;
}

/// The host-`Vec` backends share the [`AnyBuf::Host`] variant.
macro_rules! host_native {
    ($t:ty) => {
        impl<E: AnyElement> Native<E> for $t
        where
            $t: Backend<E, Buf = Vec<E>>,
        {
            fn wrap(buf: Vec<E>) -> AnyBuf<E> {
                AnyBuf::Host(buf)
            }

            #[allow(unreachable_patterns)]
            fn buf<'a>(&self, buf: &'a AnyBuf<E>) -> Result<&'a Vec<E>> {
                match buf {
                    AnyBuf::Host(v) => Ok(v),
                    _ => Err(foreign(&self.name())),
                }
            }

            #[allow(unreachable_patterns)]
            fn buf_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Result<&'a mut Vec<E>> {
                match buf {
                    AnyBuf::Host(v) => Ok(v),
                    _ => Err(foreign(&self.name())),
                }
            }
        }
    };
}

host_native!(Reference);
#[cfg(feature = "openblas")]
host_native!(OpenBlas);

#[cfg(feature = "plugins")]
impl<E: AnyElement> Native<E> for PluginBackend {
    fn wrap(buf: PluginBuf<E>) -> AnyBuf<E> {
        AnyBuf::Plugin(buf)
    }

    #[allow(unreachable_patterns)]
    fn buf<'a>(&self, buf: &'a AnyBuf<E>) -> Result<&'a PluginBuf<E>> {
        match buf {
            AnyBuf::Plugin(b) => Ok(b),
            _ => Err(foreign("plugin")),
        }
    }

    #[allow(unreachable_patterns)]
    fn buf_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Result<&'a mut PluginBuf<E>> {
        match buf {
            AnyBuf::Plugin(b) => Ok(b),
            _ => Err(foreign("plugin")),
        }
    }
}

#[cfg(feature = "cuda")]
impl<E: AnyElement> Native<E> for Cuda {
    fn wrap(buf: nabla_cuda::CudaBuf<E>) -> AnyBuf<E> {
        AnyBuf::Cuda(buf)
    }

    fn buf<'a>(&self, buf: &'a AnyBuf<E>) -> Result<&'a nabla_cuda::CudaBuf<E>> {
        match buf {
            AnyBuf::Cuda(b) => Ok(b),
            _ => Err(foreign("cuda")),
        }
    }

    fn buf_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Result<&'a mut nabla_cuda::CudaBuf<E>> {
        match buf {
            AnyBuf::Cuda(b) => Ok(b),
            _ => Err(foreign("cuda")),
        }
    }
}

/// A buffer of another kind of backend was passed in (which operand is not known at this level).
fn foreign(backend: &str) -> Error {
    Error::ForeignBuffer { backend: backend.to_string(), op: "an operation", operand: "a buffer".to_string() }
}

/// Runs `$body` with `$b` bound to the backend inside `$self`.
macro_rules! dispatch {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            AnyBackend::Reference($b) => $body,
            #[cfg(feature = "openblas")]
            AnyBackend::OpenBlas($b) => $body,
            #[cfg(feature = "cuda")]
            AnyBackend::Cuda($b) => $body,
            #[cfg(feature = "plugins")]
            AnyBackend::Plugin($b) => $body,
        }
    };
}

/// Lends a slice of [`AnyBuf`] state buffers to `f` as the backend's own buffer type.
fn native_state<E: AnyElement, N: Native<E>>(
    n: &N,
    state: &mut [&mut AnyBuf<E>],
    f: impl FnOnce(&mut [&mut N::Buf]) -> Result<()>,
) -> Result<()> {
    match state {
        [] => f(&mut []),
        [a] => f(&mut [n.buf_mut(a)?]),
        [a, b] => f(&mut [n.buf_mut(a)?, n.buf_mut(b)?]),
        _ => Err(Error::shape("update", format!("{} state buffers given; rules keep at most 2", state.len()))),
    }
}

impl<E: AnyElement> Backend<E> for AnyBackend {
    type Buf = AnyBuf<E>;

    fn name(&self) -> String {
        dispatch!(self, b => Backend::<E>::name(b))
    }

    fn alloc(&self, len: usize) -> Result<AnyBuf<E>> {
        dispatch!(self, b => b.alloc(len).map(wrap_of(b)))
    }

    fn len(&self, buf: &AnyBuf<E>) -> usize {
        dispatch!(self, b => b.buf(buf).map_or(0, |x| b.len(x)))
    }

    fn host_view<'a>(&self, buf: &'a AnyBuf<E>) -> Option<&'a [E]> {
        dispatch!(self, b => b.buf(buf).ok().and_then(|x| b.host_view(x)))
    }

    fn host_view_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Option<&'a mut [E]> {
        dispatch!(self, b => b.buf_mut(buf).ok().and_then(|x| b.host_view_mut(x)))
    }

    fn write(&self, host: &[E], buf: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.write(host, b.buf_mut(buf)?))
    }

    fn download(&self, buf: &AnyBuf<E>, host: &mut [E]) -> Result<()> {
        dispatch!(self, b => b.download(b.buf(buf)?, host))
    }

    fn upload(&self, host: &[E]) -> Result<AnyBuf<E>> {
        dispatch!(self, b => b.upload(host).map(wrap_of(b)))
    }

    fn synchronize(&self) -> Result<()> {
        dispatch!(self, b => Backend::<E>::synchronize(b))
    }

    fn join_ranks(&self, comm: &dyn Collective) -> Result<bool> {
        dispatch!(self, b => Backend::<E>::join_ranks(b, comm))
    }

    fn sum_over_ranks(&self, bufs: &mut [&mut AnyBuf<E>]) -> Result<()> {
        dispatch!(self, b => {
            let mut native = bufs.iter_mut().map(|x| b.buf_mut(x)).collect::<Result<Vec<_>>>()?;
            b.sum_over_ranks(&mut native)
        })
    }

    fn wait_for_sums(&self) -> Result<()> {
        dispatch!(self, b => Backend::<E>::wait_for_sums(b))
    }

    fn gemm(&self, s: Gemm, alpha: E, a: &AnyBuf<E>, x: &AnyBuf<E>, beta: E, c: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.gemm(s, alpha, b.buf(a)?, b.buf(x)?, beta, b.buf_mut(c)?))
    }

    fn copy(&self, len: usize, src: &AnyBuf<E>, dst: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.copy(len, b.buf(src)?, b.buf_mut(dst)?))
    }

    fn hadamard(&self, len: usize, x: &AnyBuf<E>, y: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.hadamard(len, b.buf(x)?, b.buf_mut(y)?))
    }

    fn bias_add(&self, d: Dims, bias: &AnyBuf<E>, z: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.bias_add(d, b.buf(bias)?, b.buf_mut(z)?))
    }

    fn activate(&self, f: Activation, d: Dims, z: &AnyBuf<E>, a: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.activate(f, d, b.buf(z)?, b.buf_mut(a)?))
    }

    fn bias_add_activate(
        &self,
        f: Activation,
        d: Dims,
        bias: &AnyBuf<E>,
        z: &mut AnyBuf<E>,
        a: &mut AnyBuf<E>,
    ) -> Result<()> {
        dispatch!(self, b => b.bias_add_activate(f, d, b.buf(bias)?, b.buf_mut(z)?, b.buf_mut(a)?))
    }

    fn activate_grad(&self, f: Activation, d: Dims, z: &AnyBuf<E>, a: &AnyBuf<E>, delta: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.activate_grad(f, d, b.buf(z)?, b.buf(a)?, b.buf_mut(delta)?))
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &AnyBuf<E>, beta: E, out: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.sum_rows(d, alpha, b.buf(x)?, beta, b.buf_mut(out)?))
    }

    fn loss(
        &self,
        l: Loss,
        d: Dims,
        out: &AnyBuf<E>,
        target: &AnyBuf<E>,
        grad: &mut AnyBuf<E>,
        stats: &mut AnyBuf<E>,
    ) -> Result<()> {
        dispatch!(self, b => b.loss(l, d, b.buf(out)?, b.buf(target)?, b.buf_mut(grad)?, b.buf_mut(stats)?))
    }

    fn update(
        &self,
        u: &Update,
        len: usize,
        w: &mut AnyBuf<E>,
        g: &AnyBuf<E>,
        state: &mut [&mut AnyBuf<E>],
    ) -> Result<()> {
        dispatch!(self, b => {
            let (w, g) = (b.buf_mut(w)?, b.buf(g)?);
            native_state(b, state, |s| b.update(u, len, w, g, s))
        })
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.dropout_mask(len, rate, seed, first, b.buf_mut(mask)?))
    }
}

/// `N::wrap` as a function value, with `N` inferred from a backend reference.
fn wrap_of<E: AnyElement, N: Native<E>>(_: &N) -> fn(N::Buf) -> AnyBuf<E> {
    N::wrap
}

/// One backend's line in `nabla backends`.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendStatus {
    /// The `--backend` name.
    pub name: String,
    /// Whether this build contains it.
    pub compiled: bool,
    /// Whether it opened on this machine.
    pub usable: bool,
    /// What it is, or why it is not usable.
    pub detail: String,
}

impl AnyBackend {
    /// A one-line description of this backend.
    pub fn describe(&self) -> String {
        match self {
            AnyBackend::Reference(_) => "plain Rust loops (the test oracle)".into(),
            #[cfg(feature = "openblas")]
            AnyBackend::OpenBlas(o) => {
                format!("OpenBLAS, {} threads, {:?} kernels, {}", o.threads(), nabla_openblas::level(), o.gemm_mode())
            }
            #[cfg(feature = "cuda")]
            AnyBackend::Cuda(c) => {
                format!("{}{}", Backend::<f32>::name(c), if c.tf32() { ", TF32 on" } else { "" })
            }
            #[cfg(feature = "plugins")]
            AnyBackend::Plugin(p) => format!("{p:?}"),
        }
    }

    /// Every backend this build knows of, each probed by opening it (and every GPU, by ordinal).
    pub fn statuses(options: &BackendOptions) -> Vec<BackendStatus> {
        let probe = |name: &str| match AnyBackend::from_name(name, options) {
            Ok(b) => BackendStatus { name: name.into(), compiled: true, usable: true, detail: b.describe() },
            Err(e) => BackendStatus {
                name: name.into(),
                compiled: !matches!(&e, Error::Unavailable { reason, .. } if reason.contains("compiled without")),
                usable: false,
                detail: e.to_string(),
            },
        };
        let mut out = vec![probe("reference"), probe("openblas")];
        #[cfg(feature = "cuda")]
        match nabla_cuda::devices() {
            Ok(devices) => out.extend(devices.into_iter().map(|d| BackendStatus {
                name: format!("cuda:{}", d.ordinal),
                compiled: true,
                usable: true,
                detail: format!(
                    "{}, {:.1} GiB, compute capability {}.{}",
                    d.name,
                    d.memory_bytes as f64 / (1u64 << 30) as f64,
                    d.compute_capability.0,
                    d.compute_capability.1
                ),
            })),
            Err(e) => {
                out.push(BackendStatus { name: "cuda".into(), compiled: true, usable: false, detail: e.to_string() })
            }
        }
        #[cfg(not(feature = "cuda"))]
        out.push(probe("cuda"));
        out.push(BackendStatus {
            name: "plugin:PATH".into(),
            compiled: cfg!(feature = "plugins"),
            usable: cfg!(feature = "plugins"),
            detail: if cfg!(feature = "plugins") {
                "loads a backend from a shared library (`nabla backends --plugin PATH` lists what it supports)".into()
            } else {
                "not compiled in; rebuild with `--features plugins`".into()
            },
        });
        out
    }
}
