//! Run-time backend choice: [`AnyBackend`] is an enum over the backends compiled in (and plugins
//! loaded at run time) that implements [`Backend`] by `match`, so generic code stays generic and
//! `--backend NAME` picks one when the program runs.

use std::fmt;
use std::str::FromStr;

use nabla_core::backend::{Backend, Dims, Gemm};
use nabla_core::{Activation, Element, Error, Loss, Reference, Result, Update};

#[cfg(feature = "openblas")]
use nabla_openblas::OpenBlas;

/// A buffer of whichever backend made it.
pub enum AnyBuf<E> {
    /// A host vector (the reference and OpenBLAS backends).
    Host(Vec<E>),
}

/// A backend chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyBackend {
    /// Plain Rust loops; the oracle of the tests.
    Reference(Reference),
    /// OpenBLAS on the CPU.
    #[cfg(feature = "openblas")]
    OpenBlas(OpenBlas),
}

/// How to open a backend: the settings that only some backends use.
#[derive(Clone, Debug, Default)]
pub struct BackendOptions {
    /// CPU threads (OpenBLAS); `None` means one per core.
    pub threads: Option<usize>,
}

/// The `--backend` values, for parsing and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendName {
    Reference,
    OpenBlas,
}

/// The accepted `--backend` values.
pub const BACKEND_NAMES: &str = "reference, openblas";

impl FromStr for BackendName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reference" | "ref" => Ok(BackendName::Reference),
            "openblas" | "cpu" => Ok(BackendName::OpenBlas),
            _ => Err(Error::invalid("backend", format!("`{s}`; accepted: {BACKEND_NAMES}"))),
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendName::Reference => f.write_str("reference"),
            BackendName::OpenBlas => f.write_str("openblas"),
        }
    }
}

impl AnyBackend {
    /// Opens the backend `name` with `options`; an error says why it is not usable here.
    pub fn open(name: &BackendName, options: &BackendOptions) -> Result<AnyBackend> {
        match name {
            BackendName::Reference => Ok(AnyBackend::Reference(Reference)),
            #[cfg(feature = "openblas")]
            BackendName::OpenBlas => Ok(AnyBackend::OpenBlas(OpenBlas::new(options.threads)?)),
            #[cfg(not(feature = "openblas"))]
            BackendName::OpenBlas => {
                let _ = options;
                Err(not_compiled("openblas", "openblas"))
            }
        }
    }

    /// Parses and opens `--backend` text.
    pub fn from_name(name: &str, options: &BackendOptions) -> Result<AnyBackend> {
        AnyBackend::open(&name.parse()?, options)
    }
}

/// The error for a backend left out of this build.
#[allow(dead_code)]
fn not_compiled(backend: &str, feature: &str) -> Error {
    Error::Unavailable {
        backend: backend.into(),
        reason: format!("this build of nabla was compiled without it; rebuild with `--features {feature}`"),
    }
}

/// A backend's view of [`AnyBuf`]: which variant holds its buffers.
trait Native<E: Element>: Backend<E> {
    fn wrap(buf: Self::Buf) -> AnyBuf<E>;
    fn buf<'a>(&self, buf: &'a AnyBuf<E>) -> Result<&'a Self::Buf>;
    fn buf_mut<'a>(&self, buf: &'a mut AnyBuf<E>) -> Result<&'a mut Self::Buf>;
}

/// The host-`Vec` backends share the [`AnyBuf::Host`] variant.
macro_rules! host_native {
    ($t:ty) => {
        impl<E: Element> Native<E> for $t
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

#[allow(dead_code)]
fn foreign(backend: &str) -> Error {
    Error::backend(
        backend,
        "a buffer made by another backend was passed in; make every buffer with the backend that uses it",
    )
}

/// Runs `$body` with `$b` bound to the backend inside `$self`.
macro_rules! dispatch {
    ($self:expr, $b:ident => $body:expr) => {
        match $self {
            AnyBackend::Reference($b) => $body,
            #[cfg(feature = "openblas")]
            AnyBackend::OpenBlas($b) => $body,
        }
    };
}

/// Lends a slice of [`AnyBuf`] state buffers to `f` as the backend's own buffer type.
fn native_state<E: Element, N: Native<E>>(
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

impl<E: Element> Backend<E> for AnyBackend {
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

    fn gemm(&self, s: Gemm, alpha: E, a: &AnyBuf<E>, x: &AnyBuf<E>, beta: E, c: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.gemm(s, alpha, b.buf(a)?, b.buf(x)?, beta, b.buf_mut(c)?))
    }

    fn copy(&self, len: usize, src: &AnyBuf<E>, dst: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.copy(len, b.buf(src)?, b.buf_mut(dst)?))
    }

    fn hadamard(&self, len: usize, x: &AnyBuf<E>, y: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.hadamard(len, b.buf(x)?, b.buf_mut(y)?))
    }

    fn axpy(&self, len: usize, alpha: E, x: &AnyBuf<E>, y: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.axpy(len, alpha, b.buf(x)?, b.buf_mut(y)?))
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

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, mask: &mut AnyBuf<E>) -> Result<()> {
        dispatch!(self, b => b.dropout_mask(len, rate, seed, b.buf_mut(mask)?))
    }
}

/// `N::wrap` as a function value, with `N` inferred from a backend reference.
fn wrap_of<E: Element, N: Native<E>>(_: &N) -> fn(N::Buf) -> AnyBuf<E> {
    N::wrap
}
