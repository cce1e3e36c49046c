//! Host allocations whose size comes from input (a file's header, a batch size, a layer width):
//! they return [`Error::OutOfMemory`] instead of aborting the process as `vec!` does when the
//! allocator refuses.

use crate::error::{Error, Result};

/// A vector of `len` copies of `fill`, or an error naming `what` when the memory cannot be had.
pub fn filled<T: Clone>(len: usize, fill: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        what: what.to_string(),
        bytes: len.saturating_mul(std::mem::size_of::<T>()),
    })?;
    v.resize(len, fill);
    Ok(v)
}

/// The product of sizes `dims`, or an error naming `what` when it overflows `usize`.
pub fn count(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| Error::OutOfMemory {
        what: format!("{what} ({})", dims.iter().map(ToString::to_string).collect::<Vec<_>>().join(" × ")),
        bytes: usize::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_allocation_is_an_error_not_an_abort() {
        let e = filled(usize::MAX / 8, 0.0_f64, "the test buffer").unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
        assert!(e.to_string().contains("the test buffer"), "{e}");
        // Larger than any machine's memory but not overflowing: refused by the allocator.
        assert!(filled(1usize << 60, 0u8, "huge").is_err());
        assert_eq!(filled(3, 7u8, "small").unwrap(), [7, 7, 7]);
        assert_eq!(count(&[2, 3, 4], "x").unwrap(), 24);
        assert!(count(&[usize::MAX, 2], "x").unwrap_err().to_string().contains("x ("));
    }
}
