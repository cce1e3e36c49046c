//! Benchmark workloads shared by `nabla bench` and the criterion benches: the three training
//! workloads of `../shared/peers` and the GEMMs they are made of.

use std::time::Instant;

use nabla_core::backend::{Backend, Gemm, Trans};
use nabla_core::distributed::{self, Collective, GradientReducer, Shard};
use nabla_core::{Activation, Architecture, Element, Init, Loss, Network, Optimizer, OptimizerConfig, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A training workload: a network shape, a batch size and a step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Name as in `../shared/peers` (`mnist-mlp`, `tiny`, `wide`), or `width-N` / `batch-N`.
    pub name: String,
    /// Short alias (`W1`, `W2`, `W3`).
    pub alias: String,
    /// Layer sizes.
    pub sizes: Vec<usize>,
    /// Hidden activation.
    pub hidden: Activation,
    /// Loss (fused with the output activation).
    pub loss: Loss,
    /// Samples per step.
    pub batch: usize,
    /// Timed steps per repetition (the peers' count).
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Whether the headline figure is steps/s (else samples/s).
    pub steps_metric: bool,
}

impl Workload {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        alias: &str,
        sizes: &[usize],
        hidden: Activation,
        loss: Loss,
        batch: usize,
        steps: usize,
        warmup: usize,
    ) -> Workload {
        Workload {
            name: name.into(),
            alias: alias.into(),
            sizes: sizes.to_vec(),
            hidden,
            loss,
            batch,
            steps,
            warmup,
            steps_metric: false,
        }
    }

    /// W1 "mnist-mlp": 784-512-256-10, ReLU, softmax-CE, batch 128, 300 steps.
    pub fn mnist_mlp() -> Workload {
        Workload::new("mnist-mlp", "W1", &[784, 512, 256, 10], Activation::Relu, Loss::SoftmaxCe, 128, 300, 20)
    }

    /// W2 "tiny": 2-16-16-1, sigmoid, BCE, batch 32, 20 000 steps (reported in steps/s).
    pub fn tiny() -> Workload {
        Workload {
            steps_metric: true,
            ..Workload::new("tiny", "W2", &[2, 16, 16, 1], Activation::Sigmoid, Loss::Bce, 32, 20_000, 500)
        }
    }

    /// W3 "wide": 1024-4096-4096-10, ReLU, softmax-CE, batch 512, 20 steps.
    pub fn wide() -> Workload {
        Workload::new("wide", "W3", &[1024, 4096, 4096, 10], Activation::Relu, Loss::SoftmaxCe, 512, 20, 3)
    }

    /// The three peer workloads.
    pub fn all() -> [Workload; 3] {
        [Workload::mnist_mlp(), Workload::tiny(), Workload::wide()]
    }

    /// The scaling study in width: 1024-`width`-`width`-10, ReLU, softmax-CE, batch 128.
    pub fn width(width: usize) -> Workload {
        let name = format!("width-{width}");
        Workload::new(&name, &name, &[1024, width, width, 10], Activation::Relu, Loss::SoftmaxCe, 128, 200, 5)
    }

    /// The scaling study in batch: 1024-1024-1024-10, ReLU, softmax-CE, batch `batch`.
    pub fn batch(batch: usize) -> Workload {
        let name = format!("batch-{batch}");
        Workload::new(&name, &name, &[1024, 1024, 1024, 10], Activation::Relu, Loss::SoftmaxCe, batch, 200, 5)
    }

    /// The workload called `name` or its alias (case-insensitive).
    pub fn named(name: &str) -> Option<Workload> {
        Workload::all().into_iter().find(|w| w.name.eq_ignore_ascii_case(name) || w.alias.eq_ignore_ascii_case(name))
    }

    /// The architecture.
    pub fn architecture(&self) -> Result<Architecture> {
        Architecture::new(&self.sizes, self.hidden, self.loss)
    }

    /// The GEMMs of one training step: per layer the forward product `Z = A Wᵀ`, the weight
    /// gradient `∂W = δᵀ A` and (except for the first layer) the input gradient `δ W`.
    pub fn gemms(&self) -> Vec<Gemm> {
        let m = self.batch;
        let mut out = Vec::new();
        for (l, w) in self.sizes.windows(2).enumerate() {
            let (k, n) = (w[0], w[1]);
            out.push(Gemm { ta: Trans::No, tb: Trans::Yes, m, n, k });
            out.push(Gemm { ta: Trans::Yes, tb: Trans::No, m: n, n: k, k: m });
            if l > 0 {
                out.push(Gemm { ta: Trans::No, tb: Trans::No, m, n: k, k: n });
            }
        }
        out
    }

    /// The bytes a training step needs, by the model: parameters, their gradients and
    /// `state_per_parameter` optimizer tensors, plus one batch's input, targets, and `Z`, `A`,
    /// `δ` of every layer, for elements of `element_bytes`.
    pub fn model_bytes(&self, element_bytes: usize, state_per_parameter: usize) -> usize {
        let params: usize = self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        let activations: usize = self.sizes[1..].iter().map(|&n| 3 * self.batch * n).sum();
        let io = self.batch * (self.sizes[0] + self.sizes[self.sizes.len() - 1]);
        element_bytes * (params * (2 + state_per_parameter) + activations + io)
    }

    /// Floating-point operations of one step's GEMMs (`Σ 2mnk`, the peers' FLOP/step).
    pub fn flops_per_step(&self) -> f64 {
        self.gemms().iter().map(Gemm::flops).sum()
    }
}

/// A network, an optimizer and a few batches resident on the backend, ready to step; data
/// parallel, each rank holds its shard of every global batch.
pub struct Prepared<E: Element, B: Backend<E>> {
    /// The network.
    pub net: Network<E, B>,
    /// Its SGD optimizer.
    pub opt: Optimizer<B::Buf>,
    batches: Vec<(B::Buf, B::Buf)>,
    /// Rows of this rank's shard, of the global batch, and the shard's first row.
    rows: (usize, usize, usize),
    next: usize,
    reducer: Option<GradientReducer<E, B>>,
}

/// Distinct batches cycled through by the timed steps.
const BATCHES: usize = 2;

impl<E: Element, B: Backend<E>> Prepared<E, B> {
    /// Builds `w` on `backend` with SGD (lr 0.01) and Gaussian data, random labels (seeded).
    pub fn new(backend: B, w: &Workload) -> Result<Self> {
        Self::sharded(backend, w, None)
    }

    /// [`Prepared::new`] as one rank of a data-parallel run over `comm` (`None`: alone): the
    /// workload's batch is the global batch, this rank holds its shard, and a step all-reduces
    /// the gradients between backward and update (so the fused SGD step is not used).
    pub fn sharded(backend: B, w: &Workload, comm: Option<Box<dyn Collective>>) -> Result<Self> {
        let (rank, size) = comm.as_ref().map_or((0, 1), |c| (c.rank(), c.size()));
        let part = distributed::shard(w.batch, rank, size);
        let arch = w.architecture()?;
        let (n_in, n_out) = (arch.inputs(), arch.outputs());
        let mut rng = ChaCha8Rng::seed_from_u64(1234);
        let mut batches = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let x: Vec<E> = (0..w.batch * n_in).map(|_| E::of(StandardNormal.sample(&mut rng))).collect();
            let mut y = vec![E::zero(); w.batch * n_out];
            for row in y.chunks_mut(n_out) {
                if n_out == 1 {
                    row[0] = E::of(f64::from(rng.random_range(0..2u8)));
                } else {
                    row[rng.random_range(0..n_out)] = E::one();
                }
            }
            let (xs, ys) = (&x[part.start * n_in..part.end * n_in], &y[part.start * n_out..part.end * n_out]);
            batches.push((backend.upload(xs)?, backend.upload(ys)?));
        }
        let net = Network::new(backend, arch, Init::Auto, 1234)?;
        let opt = net.optimizer(OptimizerConfig::named("sgd", 0.01)?)?;
        let reducer = comm.map(|c| GradientReducer::new(c, &net)).transpose()?;
        Ok(Prepared { net, opt, batches, rows: (part.len(), w.batch, part.start), next: 0, reducer })
    }

    /// One training step on the next batch (the loss stays on the backend).
    pub fn step(&mut self) -> Result<()> {
        let (x, y) = &self.batches[self.next];
        self.next = (self.next + 1) % self.batches.len();
        let (rows, global_rows, offset) = self.rows;
        match &mut self.reducer {
            None => self.net.train_step(x, y, rows, &mut self.opt),
            Some(r) => {
                let shard = Shard { x, y, rows, global_rows, offset };
                distributed::train_step(&mut self.net, &mut self.opt, r, shard).map(|_| ())
            }
        }
    }

    /// Data-parallel: whether each layer's all-reduce starts during backward (the default) or
    /// after it ([`GradientReducer::set_overlap`]); nothing alone.
    pub fn set_overlap(&mut self, on: bool) {
        if let Some(r) = &mut self.reducer {
            r.set_overlap(on);
        }
    }

    /// The gradient all-reduces done so far and the seconds spent in them that backward did not
    /// hide (none alone).
    pub fn reductions(&self) -> (u64, f64) {
        self.reducer.as_ref().map_or((0, 0.0), GradientReducer::reductions)
    }

    /// Runs `steps` steps and waits for the backend; returns the seconds taken.
    pub fn time(&mut self, steps: usize) -> Result<f64> {
        let started = Instant::now();
        for _ in 0..steps {
            self.step()?;
        }
        Backend::<E>::synchronize(self.net.backend())?;
        Ok(started.elapsed().as_secs_f64())
    }
}

/// Operands of one GEMM resident on the backend.
pub struct GemmOperands<E: Element, B: Backend<E>> {
    /// The product's shape.
    pub shape: Gemm,
    a: B::Buf,
    b: B::Buf,
    c: B::Buf,
}

impl<E: Element, B: Backend<E>> GemmOperands<E, B> {
    /// Random operands for `shape`.
    pub fn new(backend: &B, shape: Gemm) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut random = |n: usize| -> Vec<E> { (0..n).map(|_| E::of(rng.random_range(-1.0..1.0))).collect() };
        Ok(GemmOperands {
            shape,
            a: backend.upload(&random(shape.a_dims().len()))?,
            b: backend.upload(&random(shape.b_dims().len()))?,
            c: backend.alloc(shape.c_dims().len())?,
        })
    }

    /// One product `C = op(A) op(B)`.
    pub fn run(&mut self, backend: &B) -> Result<()> {
        backend.gemm(self.shape, E::one(), &self.a, &self.b, E::zero(), &mut self.c)
    }

    /// `reps` products, then a synchronisation; returns the seconds taken.
    pub fn time(&mut self, backend: &B, reps: usize) -> Result<f64> {
        let started = Instant::now();
        for _ in 0..reps {
            self.run(backend)?;
        }
        backend.synchronize()?;
        Ok(started.elapsed().as_secs_f64())
    }
}

/// This process's resident memory now and at its peak, in bytes (`VmRSS`, `VmHWM`; Linux).
pub fn resident_memory() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<usize> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<usize>().ok()? * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Median, minimum and maximum of a sample.
pub fn summarize(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 { times[n / 2] } else { 0.5 * (times[n / 2 - 1] + times[n / 2]) };
    (median, times[0], times[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_the_peers_table() {
        // ../shared/peers/README.md: 0.308 G, 56 k, 60.26 G.
        assert!((Workload::mnist_mlp().flops_per_step() / 1e9 - 0.308).abs() < 0.001);
        assert!((Workload::tiny().flops_per_step() / 1e3 - 56.0).abs() < 1.0);
        assert!((Workload::wide().flops_per_step() / 1e9 - 60.26).abs() < 0.01);
        assert_eq!(Workload::mnist_mlp().gemms().len(), 8);
    }

    #[test]
    fn names_and_aliases() {
        assert_eq!(Workload::named("w2"), Some(Workload::tiny()));
        assert_eq!(Workload::named("mnist-mlp"), Some(Workload::mnist_mlp()));
        assert_eq!(Workload::named("huge"), None);
        assert_eq!(summarize(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
    }
}
