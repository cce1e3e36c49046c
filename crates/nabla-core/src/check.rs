//! Size checks shared by every backend: an operation on buffers that are too short returns
//! [`Error::Shape`] naming the operation, the operand and both sizes, instead of panicking.

use crate::backend::{Dims, Gemm};
use crate::error::{Error, Result};

/// Checks that operand `name` of `op`, used as `what`, fits in a buffer of `have` elements.
pub fn fits(op: &'static str, name: &str, what: Dims, have: usize) -> Result<()> {
    if what.rows.checked_mul(what.cols).is_none() {
        return Err(Error::shape(op, format!("{name} is {what}: more elements than memory can hold")));
    }
    if what.len() > have {
        return Err(Error::shape(
            op,
            format!("{name} is {what} ({} elements) but its buffer holds {have}", what.len()),
        ));
    }
    Ok(())
}

/// Checks the three operands of a GEMM.
pub fn gemm(s: &Gemm, a: usize, b: usize, c: usize) -> Result<()> {
    fits("gemm", "A", s.a_dims(), a)?;
    fits("gemm", "B", s.b_dims(), b)?;
    fits("gemm", "C", s.c_dims(), c)
}

/// Checks element-wise operands of `len` elements each.
pub fn elementwise(op: &'static str, len: usize, operands: &[(&str, usize)]) -> Result<()> {
    operands.iter().try_for_each(|&(name, have)| fits(op, name, Dims::new(1, len), have))
}

/// Checks matrix operands that all have shape `d`.
pub fn matrices(op: &'static str, d: Dims, operands: &[(&str, usize)]) -> Result<()> {
    operands.iter().try_for_each(|&(name, have)| fits(op, name, d, have))
}

/// Checks a bias (or column-sum) vector of `d.cols` entries.
pub fn bias(op: &'static str, d: Dims, have: usize) -> Result<()> {
    fits(op, "bias", Dims::new(1, d.cols), have)
}

/// Checks the two-entry statistics buffer of the loss.
pub fn stats(have: usize) -> Result<()> {
    fits("loss", "stats", Dims::new(1, 2), have)
}

/// Checks the optimizer state buffers: `expected` buffers of at least `len` elements.
pub fn state(len: usize, expected: usize, have: impl ExactSizeIterator<Item = usize>) -> Result<()> {
    if have.len() != expected {
        return Err(Error::shape(
            "update",
            format!("the rule keeps {expected} state buffers but {} were given", have.len()),
        ));
    }
    have.into_iter().try_for_each(|h| fits("update", "state", Dims::new(1, len), h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Trans;

    #[test]
    fn gemm_error_names_operand_and_sizes() {
        let s = Gemm { ta: Trans::Yes, tb: Trans::No, m: 3, n: 4, k: 5 };
        let e = gemm(&s, 15, 19, 12).unwrap_err().to_string();
        assert_eq!(e, "shape mismatch in gemm: B is 5×4 (20 elements) but its buffer holds 19");
    }
}
