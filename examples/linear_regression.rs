//! Gradient descent, shown: a one-layer linear network `ŷ = x wᵀ + b` trained by full-batch
//! gradient descent on the mean squared error converges to the least-squares solution, which
//! `ndarray-linalg` computes directly (SVD). Both are printed.
//!
//! `cargo run --release --example linear_regression`

use nabla::linear_regression_demo::{gradient_descent, least_squares, problem};

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
