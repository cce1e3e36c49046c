//! Whole training steps (forward, output error, backward, update) through the driver, on the
//! backend and on the reference, from the same seed.

use nabla_core::backend::Backend;
use nabla_core::{Activation, Architecture, Element, Init, Loss, Network, OptimizerConfig, Reference, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cases::{random, size, tol};
use crate::report::Sink;

/// Two steps of four small networks (every loss but mae, with and without dropout, four
/// optimizers): each parameter tensor after the steps, and the last batch's loss.
pub fn training_step<E: Element, B: Backend<E> + Clone>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let cases = [
        (vec![3, 17, 64, 5], Activation::Relu, Loss::SoftmaxCe, 0.0, "adam"),
        (vec![17, 129, 1], Activation::Tanh, Loss::Bce, 0.25, "sgd"),
        (vec![1, 3, 3], Activation::Sigmoid, Loss::Mse, 0.0, "momentum"),
        (vec![64, 17, 2], Activation::Gelu, Loss::Huber { delta: 0.5 }, 0.1, "rmsprop"),
    ];
    for (sizes, act, loss, dropout, opt) in cases {
        let rows = size(&mut rng);
        let variant = format!("{sizes:?} {act} {loss} dropout {dropout} {opt}");
        let arch = match Architecture::new(&sizes, act, loss).and_then(|a| a.with_dropout(dropout)) {
            Ok(arch) => arch,
            Err(e) => return sink.close::<E>("training_step", &variant, "architecture", Ok(vec![]), Err(e), 0.0),
        };
        let (n_in, n_out) = (arch.inputs(), arch.outputs());
        let x = random::<E>(&mut rng, rows * n_in, -1.0, 1.0);
        let y: Vec<E> = if !loss.is_classification() {
            random(&mut rng, rows * n_out, -1.0, 1.0)
        } else {
            (0..rows * n_out).map(|i| if (i * 7 + 3) % n_out.max(2) == 0 { E::one() } else { E::zero() }).collect()
        };
        let want = two_steps(Network::new(Reference, arch.clone(), Init::Auto, 5), opt, &x, &y);
        let got = two_steps(Network::new(b.clone(), arch, Init::Auto, 5), opt, &x, &y);
        let case = format!("rows {rows}");
        match (got, want) {
            (Ok((got, got_loss)), Ok((want, want_loss))) => {
                let tensors = got.len().max(want.len());
                for i in 0..tensors {
                    let pick = |t: &[Vec<E>]| Ok(t.get(i).cloned().unwrap_or_default());
                    let name = format!("{case}, tensor {i}");
                    sink.close("training_step", &variant, &name, pick(&got), pick(&want), tol::<E>());
                }
                let (g, w) = (vec![E::of(got_loss)], vec![E::of(want_loss)]);
                sink.close("training_step", &variant, &format!("{case}, loss"), Ok(g), Ok(w), tol::<E>());
            }
            (got, want) => sink.close(
                "training_step",
                &variant,
                &case,
                got.map(|_| Vec::<E>::new()),
                want.map(|_| Vec::new()),
                tol::<E>(),
            ),
        }
    }
}

/// Two steps of `net` on `(x, y)` with the optimizer `opt` (learning rate 0.01): the parameters
/// and the last batch's loss.
fn two_steps<E: Element, B: Backend<E>>(
    net: Result<Network<E, B>>,
    opt: &str,
    x: &[E],
    y: &[E],
) -> Result<(Vec<Vec<E>>, f64)> {
    let mut net = net?;
    let mut opt = net.optimizer(OptimizerConfig::named(opt, 0.01)?)?;
    for _ in 0..2 {
        net.train_batch(x, y, &mut opt)?;
    }
    Ok((net.parameters_to_host()?, net.score()?.loss))
}
