//! Gradient descent, shown: a one-layer linear network `ŷ = x wᵀ + b` trained by full-batch
//! gradient descent on the mean squared error converges to the least-squares solution, which
//! `ndarray-linalg` computes directly (SVD). Both are printed.
//!
//! `cargo run --release --example linear_regression`

use ndarray::{Array1, Array2, Axis, concatenate};
use ndarray_linalg::LeastSquaresSvd;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use nabla::{
    Activation, Architecture, BatchSize, Error, HostData, Init, Loss, Network, OptimizerConfig, Reference, Result,
    Silent, TrainConfig, Trainer,
};

/// `n` samples of three standard-normal features and `y = 2x₁ − x₂ + 0.5x₃ + 3 + 0.1·noise`.
pub fn problem(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gauss = || -> f64 { StandardNormal.sample(&mut rng) };
    let x = Array2::from_shape_simple_fn((n, 3), &mut gauss);
    let y = x.dot(&ndarray::arr1(&[2.0, -1.0, 0.5])) + 3.0 + Array1::from_shape_simple_fn(n, || 0.1 * gauss());
    (x, y)
}

/// `[w₁, w₂, w₃, b]` minimising `‖[x 1]·θ − y‖²`, by SVD.
pub fn least_squares(x: &Array2<f64>, y: &Array1<f64>) -> Result<Vec<f64>> {
    let ones = Array2::ones((x.nrows(), 1));
    let a =
        concatenate(Axis(1), &[x.view(), ones.view()]).map_err(|e| Error::invalid("least squares", e.to_string()))?;
    let solution = a.least_squares(y).map_err(|e| Error::invalid("least squares", e.to_string()))?;
    Ok(solution.solution.to_vec())
}

/// `[w₁, w₂, w₃, b]` after `epochs` full-batch gradient-descent steps of rate `lr` from zero
/// weights, and the loss of every epoch.
pub fn gradient_descent(x: &Array2<f64>, y: &Array1<f64>, lr: f64, epochs: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let arch = Architecture::new(&[x.ncols(), 1], Activation::Identity, Loss::Mse)?;
    let net = Network::new(Reference, arch, Init::Zeros, 0)?;
    let config =
        TrainConfig { epochs, batch_size: BatchSize::Full, shuffle: false, accuracy: false, ..TrainConfig::default() };
    let mut trainer = Trainer::new(net, OptimizerConfig::sgd(lr), config)?;
    let (xs, ys) = (x.iter().copied().collect::<Vec<_>>(), y.to_vec());
    trainer.fit(HostData { x: &xs, y: &ys, rows: x.nrows() }, None, &mut Silent)?;
    let params = trainer.net.parameters_to_host()?;
    let mut theta = params[0].clone();
    theta.extend(&params[1]);
    Ok((theta, trainer.history.iter().map(|r| r.train_loss).collect()))
}

fn main() -> nabla::Result<()> {
    let (x, y) = problem(200, 7);
    let exact = least_squares(&x, &y)?;
    let (learnt, history) = gradient_descent(&x, &y, 0.1, 300)?;
    println!("epoch  mse");
    for (e, loss) in history.iter().enumerate().filter(|(e, _)| e % 50 == 0 || *e == history.len() - 1) {
        println!("{:>5}  {loss:.8}", e + 1);
    }
    println!("\n{:>14} {:>14}", "least squares", "gradient descent");
    for (name, (a, b)) in ["w1", "w2", "w3", "b"].iter().zip(exact.iter().zip(&learnt)) {
        println!("{name:>3} {a:>10.6} {b:>14.6}");
    }
    let gap = exact.iter().zip(&learnt).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("\nlargest difference: {gap:.2e}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full-batch gradient descent reaches the least-squares solution, and its loss never rises.
    #[test]
    fn gradient_descent_reaches_the_least_squares_solution() {
        let (x, y) = problem(200, 7);
        let exact = least_squares(&x, &y).unwrap();
        let (learnt, history) = gradient_descent(&x, &y, 0.1, 300).unwrap();
        assert!((exact[0] - 2.0).abs() < 0.05 && (exact[3] - 3.0).abs() < 0.05, "{exact:?}");
        for (a, b) in exact.iter().zip(&learnt) {
            assert!((a - b).abs() < 1e-6, "least squares {exact:?} vs gradient descent {learnt:?}");
        }
        assert!(
            history.windows(2).all(|w| w[1] <= w[0] + 1e-15),
            "full-batch GD with a small step never increases the loss"
        );
    }
}
