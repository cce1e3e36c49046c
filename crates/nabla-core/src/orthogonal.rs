//! Orthogonal initialisation through `ndarray-linalg`'s QR decomposition.

use ndarray::Array2;
use ndarray_linalg::QR;

use crate::error::{Error, Result};

/// A `rows × cols` matrix with orthonormal rows (if `rows ≤ cols`) or columns (otherwise),
/// scaled by `gain`: the `Q` of `G = QR` for the Gaussian matrix `G` made of `gaussian`, with
/// each column of `Q` multiplied by `sign(R_jj)` so that `Q` is Haar-distributed.
pub fn draw(rows: usize, cols: usize, gain: f64, gaussian: Vec<f64>) -> Result<Vec<f64>> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    let g = Array2::from_shape_vec((tall, short), gaussian)
        .map_err(|e| Error::invalid("orthogonal init", e.to_string()))?;
    let (mut q, r) = g.qr().map_err(|e| Error::invalid("orthogonal init", format!("QR failed: {e}")))?;
    for (j, mut col) in q.columns_mut().into_iter().enumerate() {
        if r[[j, j]] < 0.0 {
            col.mapv_inplace(|v| -v);
        }
    }
    let q = if rows >= cols { q } else { q.reversed_axes() };
    Ok(q.as_standard_layout().iter().map(|&v| gain * v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Init;
    use rand::SeedableRng;

    #[test]
    fn q_transpose_q_is_identity() {
        for (rows, cols) in [(7, 4), (4, 7), (5, 5)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let w = Init::Orthogonal { gain: 1.0 }.draw(rows, cols, false, &mut rng).unwrap();
            let w = Array2::from_shape_vec((rows, cols), w).unwrap();
            let gram = if rows >= cols { w.t().dot(&w) } else { w.dot(&w.t()) };
            let n = gram.nrows();
            for i in 0..n {
                for j in 0..n {
                    let expect = if i == j { 1.0 } else { 0.0 };
                    assert!((gram[[i, j]] - expect).abs() < 1e-12, "{rows}×{cols}: ({i},{j}) = {}", gram[[i, j]]);
                }
            }
        }
    }
}
