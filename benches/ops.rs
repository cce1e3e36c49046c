//! Criterion benches of single backend operations, per backend: `<backend>_<op>_<shape>`.
//! Shapes are those of W1 (mnist-mlp, batch 128) and W2 (tiny, batch 32).
//!
//! With the `plugins` feature and `NABLA_BENCH_PLUGIN=PATH`, the plugin at PATH is benched too
//! (`plugin_<op>_<shape>`): beside `reference_*`, the example Rust plugin (which exports the
//! reference code) shows what the C-ABI indirection costs per call.

use criterion::{Criterion, criterion_group, criterion_main};
use nabla::backend::{Backend, Dims, Gemm, Trans};
use nabla::{Activation, Loss, Rule, Update, with_state_refs};

fn data(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect()
}

fn bench_ops<B: Backend<f32>>(c: &mut Criterion, name: &str, b: &B) {
    let gemms = [
        ("128x512x784_NT", Gemm { ta: Trans::No, tb: Trans::Yes, m: 128, n: 512, k: 784 }),
        ("512x784x128_TN", Gemm { ta: Trans::Yes, tb: Trans::No, m: 512, n: 784, k: 128 }),
        ("128x512x256_NN", Gemm { ta: Trans::No, tb: Trans::No, m: 128, n: 512, k: 256 }),
        ("32x16x16_NT", Gemm { ta: Trans::No, tb: Trans::Yes, m: 32, n: 16, k: 16 }),
        ("16x16x32_TN", Gemm { ta: Trans::Yes, tb: Trans::No, m: 16, n: 16, k: 32 }),
    ];
    for (shape, g) in gemms {
        if name != "openblas" && g.flops() > 1e7 {
            continue;
        }
        let (a, x) = (b.upload(&data(g.a_dims().len())).unwrap(), b.upload(&data(g.b_dims().len())).unwrap());
        let mut out = b.alloc(g.c_dims().len()).unwrap();
        c.bench_function(&format!("{name}_gemm_{shape}"), |bench| {
            bench.iter(|| b.gemm(g, 1.0, &a, &x, 0.0, &mut out).unwrap());
        });
    }
    for (shape, d) in [("128x512", Dims::new(128, 512)), ("32x16", Dims::new(32, 16))] {
        let bias = b.upload(&data(d.cols)).unwrap();
        let (mut z, mut a) = (b.upload(&data(d.len())).unwrap(), b.alloc(d.len()).unwrap());
        for f in [Activation::Relu, Activation::Sigmoid] {
            c.bench_function(&format!("{name}_bias_add_activate_{f}_{shape}"), |bench| {
                bench.iter(|| b.bias_add_activate(f, d, &bias, &mut z, &mut a).unwrap());
            });
            let mut delta = b.upload(&data(d.len())).unwrap();
            c.bench_function(&format!("{name}_activate_grad_{f}_{shape}"), |bench| {
                bench.iter(|| b.activate_grad(f, d, &z, &a, &mut delta).unwrap());
            });
        }
        let mut out = b.alloc(d.cols).unwrap();
        c.bench_function(&format!("{name}_sum_rows_{shape}"), |bench| {
            bench.iter(|| b.sum_rows(d, 1.0, &a, 0.0, &mut out).unwrap());
        });
    }
    for (shape, l, d) in [("128x10", Loss::SoftmaxCe, Dims::new(128, 10)), ("32x1", Loss::Bce, Dims::new(32, 1))] {
        let (o, y) = (b.upload(&data(d.len())).unwrap(), b.upload(&vec![0.0; d.len()]).unwrap());
        let (mut g, mut s) = (b.alloc(d.len()).unwrap(), b.alloc(2).unwrap());
        c.bench_function(&format!("{name}_loss_{l}_{shape}"), |bench| {
            bench.iter(|| b.loss(l, d, &o, &y, &mut g, &mut s).unwrap());
        });
    }
    let len = 512 * 784;
    for (label, rule) in [("sgd", Rule::Sgd), ("adam", Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 })] {
        let u = Update { rule, lr: 1e-3, t: 1, l2: 0.0, decay: 0.0 };
        let (mut w, g) = (b.upload(&data(len)).unwrap(), b.upload(&data(len)).unwrap());
        let mut state: Vec<B::Buf> = (0..rule.state_count()).map(|_| b.alloc(len).unwrap()).collect();
        c.bench_function(&format!("{name}_update_{label}_512x784"), |bench| {
            bench.iter(|| with_state_refs(&mut state, |s| b.update(&u, len, &mut w, &g, s)).unwrap());
        });
    }
}

/// Element-wise passes of growing length on OpenBLAS with 1 and 2 threads (`openblas-<t>t_…`):
/// where splitting a pass across threads starts to pay (`PARALLEL_MIN` in nabla-openblas).
fn elementwise_threads(c: &mut Criterion) {
    for threads in [1, 2] {
        let b = match nabla::OpenBlas::new(Some(threads)) {
            Ok(b) => b,
            Err(e) => return eprintln!("skipped openblas: {e}"),
        };
        let name = format!("openblas-{threads}t");
        for len in [1 << 14, 1 << 16, 1 << 18, 1 << 20] {
            let d = Dims::new(len / 256, 256);
            let (bias, mut z, mut a) = (data(d.cols), data(len), vec![0.0; len]);
            c.bench_function(&format!("{name}_bias_add_activate_relu_{len}"), |bench| {
                bench.iter(|| b.bias_add_activate(Activation::Relu, d, &bias, &mut z, &mut a).unwrap());
            });
            let mut delta = data(len);
            c.bench_function(&format!("{name}_activate_grad_sigmoid_{len}"), |bench| {
                bench.iter(|| b.activate_grad(Activation::Sigmoid, d, &z, &a, &mut delta).unwrap());
            });
            let u = Update {
                rule: Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
                lr: 1e-3,
                t: 1,
                l2: 0.0,
                decay: 0.0,
            };
            let (mut w, g, mut m, mut v) = (data(len), data(len), vec![0.0; len], vec![0.0; len]);
            c.bench_function(&format!("{name}_update_adam_{len}"), |bench| {
                bench.iter(|| b.update(&u, len, &mut w, &g, &mut [&mut m, &mut v]).unwrap());
            });
        }
    }
}

fn ops(c: &mut Criterion) {
    bench_ops(c, "reference", &nabla::Reference);
    match nabla::OpenBlas::new(Some(1)) {
        Ok(o) => bench_ops(c, "openblas", &o),
        Err(e) => eprintln!("skipped openblas: {e}"),
    }
    #[cfg(feature = "plugins")]
    if let Some(path) = std::env::var_os("NABLA_BENCH_PLUGIN") {
        match nabla::plugin::PluginBackend::load(std::path::Path::new(&path)) {
            Ok(p) => bench_ops(c, "plugin", &p),
            Err(e) => eprintln!("skipped the plugin: {e}"),
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = ops, elementwise_threads
}
criterion_main!(benches);
