//! The scalar types a backend computes in: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;

use ndarray::LinalgScalar;
use num_traits::Float;

use crate::distributed::{Collective, NextPiece};
use crate::error::Result;
use crate::fastmath::ExpFast;

/// The data type of a buffer, as named in files and in the plugin ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DType {
    /// 32-bit IEEE floats.
    F32,
    /// 64-bit IEEE floats.
    F64,
}

impl DType {
    /// The lower-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = crate::Error;

    /// Parses `f32` or `f64`.
    fn from_str(s: &str) -> crate::Result<DType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            _ => Err(crate::Error::invalid("dtype", format!("`{s}`; accepted: f32, f64"))),
        }
    }
}

/// A floating-point element: `f32` or `f64`.
///
/// Everything generic in nabla is generic over this trait; hyper-parameters travel as `f64`
/// and are converted with [`Element::of`].
pub trait Element: Float + LinalgScalar + ExpFast + Sum + Default + Debug + Display + Send + Sync + 'static {
    /// The data type tag of this element type.
    const DTYPE: DType;

    /// Converts an `f64` (a hyper-parameter, a data value) to this type, rounding to nearest.
    fn of(x: f64) -> Self;

    /// Widens to `f64` (exact for both types).
    fn f64(self) -> f64;

    /// `recv ← Σ_ranks send` over `c` in this type (data parallelism).
    fn sum_over(c: &dyn Collective, send: &[Self], recv: &mut [Self]) -> Result<()>;

    /// [`Collective::sum_pieces_f32`] over `c` in this type.
    fn sum_pieces_over<'a>(c: &dyn Collective, count: usize, next: NextPiece<'_, 'a, Self>) -> Result<()>;

    /// `buf ← rank 0's buf` over `c` in this type.
    fn broadcast_over(c: &dyn Collective, buf: &mut [Self]) -> Result<()>;

    /// `1 / (1 + e⁻ˣ)` through the vectorisable [`ExpFast::exp_fast`] (`FMA` as there).
    #[inline(always)]
    fn sigmoid_fast<const FMA: bool>(self) -> Self {
        Self::one() / (Self::one() + (-self).exp_fast::<FMA>())
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;

    fn sum_over(c: &dyn Collective, send: &[f32], recv: &mut [f32]) -> Result<()> {
        c.sum_f32(send, recv)
    }

    fn sum_pieces_over<'a>(c: &dyn Collective, count: usize, next: NextPiece<'_, 'a, f32>) -> Result<()> {
        c.sum_pieces_f32(count, next)
    }

    fn broadcast_over(c: &dyn Collective, buf: &mut [f32]) -> Result<()> {
        c.broadcast_f32(buf)
    }

    fn of(x: f64) -> Self {
        x as f32
    }

    fn f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;

    fn sum_over(c: &dyn Collective, send: &[f64], recv: &mut [f64]) -> Result<()> {
        c.sum_f64(send, recv)
    }

    fn sum_pieces_over<'a>(c: &dyn Collective, count: usize, next: NextPiece<'_, 'a, f64>) -> Result<()> {
        c.sum_pieces_f64(count, next)
    }

    fn broadcast_over(c: &dyn Collective, buf: &mut [f64]) -> Result<()> {
        c.broadcast_f64(buf)
    }

    fn of(x: f64) -> Self {
        x
    }

    fn f64(self) -> f64 {
        self
    }
}
