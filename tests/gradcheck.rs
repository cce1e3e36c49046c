//! Backprop's gradients against central finite differences (f64), for every hidden activation ×
//! loss pair, and every output activation under the losses that allow a free one.

use nabla::backend::Backend;
use nabla::{Activation, Architecture, Init, Loss, Network, gradient_check, randomize_biases};
use nabla_backend_tests::random;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn check<B: Backend<f64>>(backend: B, hidden: Activation, loss: Loss, output: Option<Activation>) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let n_out = if loss == Loss::Bce { 2 } else { 4 };
    let mut arch = Architecture::new(&[3, 6, 5, n_out], hidden, loss).unwrap();
    if let Some(out) = output {
        arch = arch.with_output(out).unwrap();
    }
    let rows = 7;
    let x = random::<f64>(&mut rng, rows * 3, -1.5, 1.5);
    let y: Vec<f64> = match loss {
        Loss::SoftmaxCe => {
            (0..rows).flat_map(|r| (0..n_out).map(move |j| f64::from(u8::from(j == r % n_out)))).collect()
        }
        Loss::Bce => (0..rows * n_out).map(|_| f64::from(rng.random_range(0..2u8))).collect(),
        _ => random(&mut rng, rows * n_out, -1.0, 1.0),
    };
    let mut net = Network::new(backend, arch, Init::XavierNormal, 3).unwrap();
    randomize_biases(&mut net, 0.3, 4).unwrap();
    let report = gradient_check(&mut net, &x, &y, 1e-5).unwrap();
    assert_eq!(report.layers.len(), 3);
    report.max_rel_error
}

#[test]
fn every_activation_with_every_loss() {
    for hidden in Activation::ALL {
        for loss in Loss::ALL {
            let err = check(nabla::Reference, hidden, loss, None);
            assert!(err < 1e-6, "{hidden} hidden, {loss}: max relative error {err:.3e}");
        }
    }
}

#[test]
fn every_output_activation_under_regression_losses() {
    for output in Activation::ALL {
        for loss in [Loss::Mse, Loss::Mae, Loss::Huber { delta: 0.5 }] {
            let err = check(nabla::Reference, Activation::Tanh, loss, Some(output));
            assert!(err < 1e-6, "{output} output, {loss}: max relative error {err:.3e}");
        }
    }
}

#[test]
fn openblas_gradients_check_too() {
    for loss in Loss::ALL {
        let err = check(nabla::OpenBlas::new(Some(1)).unwrap(), Activation::Relu, loss, None);
        assert!(err < 1e-6, "openblas relu, {loss}: {err:.3e}");
    }
}

/// The reference backend with a subtly wrong derivative: σ' is 1% too large.
#[derive(Clone)]
struct WrongDerivative;

impl Backend<f64> for WrongDerivative {
    type Buf = Vec<f64>;
    fn name(&self) -> String {
        "wrong-derivative".into()
    }
    fn alloc(&self, len: usize) -> nabla::Result<Vec<f64>> {
        nabla::Reference.alloc(len)
    }
    fn len(&self, buf: &Vec<f64>) -> usize {
        buf.len()
    }
    fn write(&self, host: &[f64], buf: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.write(host, buf)
    }
    fn download(&self, buf: &Vec<f64>, host: &mut [f64]) -> nabla::Result<()> {
        nabla::Reference.download(buf, host)
    }
    fn gemm(
        &self,
        s: nabla::Gemm,
        al: f64,
        a: &Vec<f64>,
        b: &Vec<f64>,
        be: f64,
        c: &mut Vec<f64>,
    ) -> nabla::Result<()> {
        nabla::Reference.gemm(s, al, a, b, be, c)
    }
    fn hadamard(&self, len: usize, x: &Vec<f64>, y: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.hadamard(len, x, y)
    }
    fn bias_add(&self, d: nabla::Dims, bias: &Vec<f64>, z: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.bias_add(d, bias, z)
    }
    fn activate(&self, f: Activation, d: nabla::Dims, z: &Vec<f64>, a: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.activate(f, d, z, a)
    }
    fn activate_grad(
        &self,
        f: Activation,
        d: nabla::Dims,
        z: &Vec<f64>,
        a: &Vec<f64>,
        delta: &mut Vec<f64>,
    ) -> nabla::Result<()> {
        nabla::Reference.activate_grad(f, d, z, a, delta)?;
        delta.iter_mut().for_each(|v| *v *= 1.01);
        Ok(())
    }
    fn sum_rows(&self, d: nabla::Dims, al: f64, x: &Vec<f64>, be: f64, out: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.sum_rows(d, al, x, be, out)
    }
    fn loss(
        &self,
        l: Loss,
        d: nabla::Dims,
        o: &Vec<f64>,
        t: &Vec<f64>,
        g: &mut Vec<f64>,
        s: &mut Vec<f64>,
    ) -> nabla::Result<()> {
        nabla::Reference.loss(l, d, o, t, g, s)
    }
    fn update(
        &self,
        u: &nabla::Update,
        len: usize,
        w: &mut Vec<f64>,
        g: &Vec<f64>,
        s: &mut [&mut Vec<f64>],
    ) -> nabla::Result<()> {
        nabla::Reference.update(u, len, w, g, s)
    }
    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut Vec<f64>) -> nabla::Result<()> {
        nabla::Reference.dropout_mask(len, rate, seed, first, mask)
    }
}

#[test]
fn a_wrong_derivative_is_caught() {
    let err = check(WrongDerivative, Activation::Tanh, Loss::SoftmaxCe, None);
    assert!(err > 1e-3, "a 1% error in σ' must show: {err:.3e}");
}
