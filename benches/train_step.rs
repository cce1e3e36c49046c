//! Criterion benches of whole training steps, per backend: `<backend>_<workload>`.
//! W1 "mnist-mlp" (784-512-256-10, ReLU, softmax-CE, batch 128) and W2 "tiny" (2-16-16-1,
//! sigmoid, BCE, batch 32), f32 SGD. `nabla bench` measures the same workloads with the
//! GEMM-bound and peak fractions; these benches track regressions.

use criterion::{Criterion, criterion_group, criterion_main};
use nabla::backend::Backend;
use nabla::bench::{Prepared, Workload};

fn bench_workload<B: Backend<f32>>(c: &mut Criterion, backend_name: &str, backend: B, w: &Workload) {
    let mut run = match Prepared::<f32, B>::new(backend, w) {
        Ok(r) => r,
        Err(e) => return eprintln!("skipped {backend_name}_{}: {e}", w.name),
    };
    c.bench_function(&format!("{backend_name}_{}", w.name.replace('-', "_")), |b| {
        b.iter(|| run.step().expect("training step"));
    });
}

fn train_steps(c: &mut Criterion) {
    for w in [Workload::mnist_mlp(), Workload::tiny()] {
        for threads in [1, 2] {
            match nabla::OpenBlas::new(Some(threads)) {
                Ok(o) => bench_workload(c, &format!("openblas{threads}t"), o, &w),
                Err(e) => eprintln!("skipped openblas: {e}"),
            }
        }
        bench_workload(c, "reference", nabla::Reference, &w);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = train_steps
}
criterion_main!(benches);
