//! The cross-backend conformance suite: one generic body per operation, compared with the
//! reference backend on seeded random data. `conformance_suite!` instantiates it for a backend.

#![allow(dead_code)]

use nabla::backend::{Backend, Dims, Gemm, Trans};
use nabla::{
    Activation, Architecture, Element, Init, Loss, Network, OptimizerConfig, Reference, Rule, Update, with_state_refs,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The sizes every shape is drawn from (1 and odd sizes on purpose).
pub const SIZES: [usize; 5] = [1, 3, 17, 64, 129];

/// Every activation, with non-default parameters where there are any.
pub const ACTIVATIONS: [Activation; 12] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Relu,
    Activation::LeakyRelu { alpha: 0.1 },
    Activation::Elu { alpha: 0.7 },
    Activation::Gelu,
    Activation::Softplus,
    Activation::Softsign,
    Activation::Softmax,
    Activation::GeluErf,
    Activation::Silu,
];

/// Every loss.
pub const LOSSES: [Loss; 5] = [Loss::Mse, Loss::Mae, Loss::Huber { delta: 0.5 }, Loss::Bce, Loss::SoftmaxCe];

/// Every update rule, with L2 and decoupled decay switched on for some.
pub fn updates() -> Vec<Update> {
    let adam = Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    let u = |rule, lr, t, l2, decay| Update { rule, lr, t, l2, decay };
    vec![
        u(Rule::Sgd, 0.1, 1, 0.0, 0.0),
        u(Rule::Sgd, 0.1, 1, 0.01, 0.0),
        u(Rule::Momentum { mu: 0.9, nesterov: false }, 0.05, 1, 0.0, 0.0),
        u(Rule::Momentum { mu: 0.9, nesterov: true }, 0.05, 1, 0.0, 0.0),
        u(Rule::Adagrad { eps: 1e-10 }, 0.05, 1, 0.0, 0.0),
        u(Rule::RmsProp { rho: 0.99, eps: 1e-8 }, 0.003, 1, 0.0, 0.0),
        u(adam, 0.003, 3, 0.0, 0.0),
        u(adam, 0.003, 3, 0.0, 0.01),
        u(Rule::Rprop { eta_minus: 0.5, eta_plus: 1.2, step_min: 1e-6, step_max: 50.0 }, 0.01, 1, 0.0, 0.0),
    ]
}

/// `n` values uniform in `[lo, hi]`, as `E`.
pub fn random<E: Element>(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<E> {
    (0..n).map(|_| E::of(rng.random_range(lo..=hi))).collect()
}

/// A random shape from [`SIZES`].
pub fn size(rng: &mut ChaCha8Rng) -> usize {
    SIZES[rng.random_range(0..SIZES.len())]
}

/// `max |got − want| / max(max |want|, 1)`, in f64.
pub fn rel_error<E: Element>(got: &[E], want: &[E]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().map(|w| w.f64().abs()).fold(1e-300, f64::max).max(1e-300);
    let diff = got.iter().zip(want).map(|(g, w)| (g.f64() - w.f64()).abs()).fold(0.0, f64::max);
    if got.iter().zip(want).all(|(g, w)| g.f64().is_nan() && w.f64().is_nan() || g == w) { 0.0 } else { diff / scale }
}

/// Asserts agreement within `tol`, naming the case.
pub fn assert_close<E: Element>(case: &str, got: &[E], want: &[E], tol: f64) {
    let err = rel_error(got, want);
    assert!(err <= tol, "{case}: relative error {err:.3e} > {tol:e}");
}

/// The tolerance for `E`: 1e-4 in f32, 1e-10 in f64.
pub fn tol<E: Element>() -> f64 {
    if E::DTYPE == nabla::DType::F32 { 1e-4 } else { 1e-10 }
}

/// Uploads to `b`.
pub fn up<E: Element, B: Backend<E>>(b: &B, host: &[E]) -> B::Buf {
    b.upload(host).unwrap()
}

/// Downloads the first `n` elements from `b`.
pub fn down<E: Element, B: Backend<E>>(b: &B, buf: &B::Buf, n: usize) -> Vec<E> {
    let mut out = vec![E::zero(); n];
    b.download(buf, &mut out).unwrap();
    out
}

pub fn gemm<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cases = vec![(1, 1, 1), (129, 129, 129), (1, 129, 3), (129, 1, 17), (3, 17, 1)];
    cases.extend((0..35).map(|_| (size(&mut rng), size(&mut rng), size(&mut rng))));
    for (m, n, k) in cases {
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let s = Gemm { ta, tb, m, n, k };
                let a = random::<E>(&mut rng, m * k, -1.0, 1.0);
                let x = random::<E>(&mut rng, k * n, -1.0, 1.0);
                let c0 = random::<E>(&mut rng, m * n, -1.0, 1.0);
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-1.5, 0.25)] {
                    let (alpha, beta) = (E::of(alpha), E::of(beta));
                    let mut want = c0.clone();
                    Reference.gemm(s, alpha, &a, &x, beta, &mut want).unwrap();
                    let mut c = up(b, &c0);
                    b.gemm(s, alpha, &up(b, &a), &up(b, &x), beta, &mut c).unwrap();
                    assert_close(&format!("gemm {s:?} α={alpha} β={beta}"), &down(b, &c, m * n), &want, tol::<E>());
                }
            }
        }
    }
}

/// With β = 0 the old contents of C must not matter, even NaN (the BLAS convention).
pub fn gemm_beta_zero_ignores_nan<E: Element, B: Backend<E>>(b: &B) {
    let s = Gemm { ta: Trans::No, tb: Trans::Yes, m: 3, n: 17, k: 64 };
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let a = random::<E>(&mut rng, 3 * 64, -1.0, 1.0);
    let x = random::<E>(&mut rng, 17 * 64, -1.0, 1.0);
    let mut want = vec![E::zero(); 3 * 17];
    Reference.gemm(s, E::one(), &a, &x, E::zero(), &mut want).unwrap();
    let mut c = up(b, &[E::nan(); 3 * 17]);
    b.gemm(s, E::one(), &up(b, &a), &up(b, &x), E::zero(), &mut c).unwrap();
    assert_close("gemm β=0 over NaN", &down(b, &c, 3 * 17), &want, tol::<E>());
}

pub fn elementwise<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &len in &SIZES {
        let x = random::<E>(&mut rng, len, -2.0, 2.0);
        let y = random::<E>(&mut rng, len, -2.0, 2.0);
        let (xb, mut yb) = (up(b, &x), up(b, &y));
        b.hadamard(len, &xb, &mut yb).unwrap();
        let mut want = y.clone();
        Reference.hadamard(len, &x, &mut want).unwrap();
        assert_close("hadamard", &down(b, &yb, len), &want, tol::<E>());

        let mut yb = up(b, &y);
        b.axpy(len, E::of(-0.75), &xb, &mut yb).unwrap();
        let mut want = y.clone();
        Reference.axpy(len, E::of(-0.75), &x, &mut want).unwrap();
        assert_close("axpy", &down(b, &yb, len), &want, tol::<E>());

        let mut yb = up(b, &y);
        b.copy(len, &xb, &mut yb).unwrap();
        assert_eq!(down(b, &yb, len), x, "copy");
    }
}

pub fn bias_and_sums<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for _ in 0..12 {
        let d = Dims::new(size(&mut rng), size(&mut rng));
        let z = random::<E>(&mut rng, d.len(), -2.0, 2.0);
        let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
        let mut zb = up(b, &z);
        b.bias_add(d, &up(b, &bias), &mut zb).unwrap();
        let mut want = z.clone();
        Reference.bias_add(d, &bias, &mut want).unwrap();
        assert_close(&format!("bias_add {d}"), &down(b, &zb, d.len()), &want, tol::<E>());

        let mut out = up(b, &vec![E::nan(); d.cols]);
        b.sum_rows(d, E::one(), &up(b, &z), E::zero(), &mut out).unwrap();
        let mut want = vec![E::zero(); d.cols];
        Reference.sum_rows(d, E::one(), &z, E::zero(), &mut want).unwrap();
        assert_close(&format!("sum_rows {d}"), &down(b, &out, d.cols), &want, tol::<E>());

        let (alpha, beta) = (E::of(-0.3), E::of(0.7));
        let mut out = up(b, &bias);
        b.sum_rows(d, alpha, &up(b, &z), beta, &mut out).unwrap();
        let mut want = bias.clone();
        Reference.sum_rows(d, alpha, &z, beta, &mut want).unwrap();
        assert_close(&format!("sum_rows α β {d}"), &down(b, &out, d.cols), &want, tol::<E>());
    }
}

/// `bias_add_activate` on `z` and then `activate_grad` on `g` at the result, against the reference.
fn bias_activation_and_grad<E: Element, B: Backend<E>>(b: &B, f: Activation, d: Dims, z: &[E], bias: &[E], g: &[E]) {
    let (mut zw, mut aw) = (z.to_vec(), vec![E::zero(); d.len()]);
    Reference.bias_add_activate(f, d, &bias.to_vec(), &mut zw, &mut aw).unwrap();
    let (mut zb, mut ab) = (up(b, z), b.alloc(d.len()).unwrap());
    b.bias_add_activate(f, d, &up(b, bias), &mut zb, &mut ab).unwrap();
    assert_close(&format!("bias_add_activate z {f} {d}"), &down(b, &zb, d.len()), &zw, tol::<E>());
    assert_close(&format!("bias_add_activate a {f} {d}"), &down(b, &ab, d.len()), &aw, tol::<E>());

    let mut want = g.to_vec();
    Reference.activate_grad(f, d, &zw, &aw, &mut want).unwrap();
    let mut gb = up(b, g);
    b.activate_grad(f, d, &up(b, &zw), &up(b, &aw), &mut gb).unwrap();
    assert_close(&format!("activate_grad {f} {d}"), &down(b, &gb, d.len()), &want, tol::<E>());
}

pub fn activations<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for f in ACTIVATIONS {
        for _ in 0..4 {
            let d = Dims::new(size(&mut rng), size(&mut rng));
            let z = random::<E>(&mut rng, d.len(), -4.0, 4.0);
            let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
            let g = random::<E>(&mut rng, d.len(), -1.0, 1.0);

            let mut a_want = vec![E::zero(); d.len()];
            Reference.activate(f, d, &z, &mut a_want).unwrap();
            let mut ab = b.alloc(d.len()).unwrap();
            b.activate(f, d, &up(b, &z), &mut ab).unwrap();
            assert_close(&format!("activate {f} {d}"), &down(b, &ab, d.len()), &a_want, tol::<E>());

            bias_activation_and_grad(b, f, d, &z, &bias, &g);
        }
    }
}

/// A NaN in a pre-activation (in a vector's first lane, its last, and a row's scalar tail) stays
/// NaN through every activation and gives a NaN loss, so bad numbers surface instead of being
/// clamped into plausible ones; its neighbours are unaffected (but for a row-wise activation).
pub fn nan_propagates<E: Element, B: Backend<E>>(b: &B) {
    let d = Dims::new(2, 17);
    let nans = [0, 7, 16, 17 + 8];
    let mut z = random::<E>(&mut ChaCha8Rng::seed_from_u64(17), d.len(), -4.0, 4.0);
    nans.iter().for_each(|&i| z[i] = E::nan());
    let bias = up(b, &vec![E::of(0.25); d.cols]);
    for f in ACTIVATIONS {
        let (mut zb, mut ab) = (up(b, &z), b.alloc(d.len()).unwrap());
        b.bias_add_activate(f, d, &bias, &mut zb, &mut ab).unwrap();
        let a = down(b, &ab, d.len());
        for (i, a) in a.iter().enumerate() {
            // A row-wise activation (softmax) spreads a NaN over its row: both rows have one.
            let nan = f.is_row_wise() || nans.contains(&i);
            assert_eq!(a.is_nan(), nan, "{f} at {i}: {a}");
        }
    }
    for l in LOSSES {
        let target = vec![E::zero(); d.len()];
        let (mut gb, mut sb) = (b.alloc(d.len()).unwrap(), b.alloc(2).unwrap());
        b.loss(l, d, &up(b, &z), &up(b, &target), &mut gb, &mut sb).unwrap();
        assert!(down(b, &sb, 2)[0].is_nan(), "loss {l} of a NaN output");
    }
}

pub fn losses<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for l in LOSSES {
        for _ in 0..5 {
            let rows = size(&mut rng);
            let cols = if l == Loss::SoftmaxCe { size(&mut rng).max(2) } else { size(&mut rng) };
            let d = Dims::new(rows, cols);
            let out = random::<E>(&mut rng, d.len(), -3.0, 3.0);
            let target: Vec<E> = match l {
                Loss::SoftmaxCe => (0..rows)
                    .flat_map(|_| {
                        let hot = rng.random_range(0..cols);
                        (0..cols).map(move |j| if j == hot { E::one() } else { E::zero() })
                    })
                    .collect(),
                Loss::Bce => (0..d.len()).map(|_| E::of(f64::from(rng.random_range(0..2u8)))).collect(),
                _ => random(&mut rng, d.len(), -3.0, 3.0),
            };
            let (mut gw, mut sw) = (vec![E::zero(); d.len()], vec![E::zero(); 2]);
            Reference.loss(l, d, &out, &target, &mut gw, &mut sw).unwrap();
            let (mut gb, mut sb) = (b.alloc(d.len()).unwrap(), b.alloc(2).unwrap());
            b.loss(l, d, &up(b, &out), &up(b, &target), &mut gb, &mut sb).unwrap();
            let case = format!("loss {l} {d}");
            assert_close(&case, &down(b, &gb, d.len()), &gw, tol::<E>());
            let stats = down(b, &sb, 2);
            assert_close(&format!("{case} value"), &stats[..1], &sw[..1], tol::<E>());
            assert_eq!(stats[1], sw[1], "{case} correct count");
        }
    }
}

pub fn optimizer_updates<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for u in updates() {
        let len = size(&mut rng);
        let w = random::<E>(&mut rng, len, -1.0, 1.0);
        let mut state: Vec<Vec<E>> =
            (0..u.rule.state_count()).map(|i| random(&mut rng, len, 0.0, 0.1 * (i + 1) as f64)).collect();
        if matches!(u.rule, Rule::Rprop { .. }) {
            state[0] = random(&mut rng, len, -1.0, 1.0);
        }
        let mut bstate: Vec<B::Buf> = state.iter().map(|s| up(b, s)).collect();
        let mut wb = up(b, &w);
        let mut ww = w.clone();
        for step in 0..3 {
            let g = random::<E>(&mut rng, len, -1.0, 1.0);
            let u = Update { t: u.t + step, ..u };
            with_state_refs(&mut state, |s| Reference.update(&u, len, &mut ww, &g, s)).unwrap();
            let gb = up(b, &g);
            with_state_refs(&mut bstate, |s| b.update(&u, len, &mut wb, &gb, s)).unwrap();
        }
        let case = format!("update {:?}", u.rule);
        assert_close(&case, &down(b, &wb, len), &ww, tol::<E>());
        for (i, (sb, sw)) in bstate.iter().zip(&state).enumerate() {
            assert_close(&format!("{case} state {i}"), &down(b, sb, len), sw, tol::<E>());
        }
    }
}

/// Element-wise passes large enough for a backend to split them across threads (OpenBLAS does
/// above 2 × 65,536 elements), on odd shapes so that the parts are uneven.
pub fn large_elementwise<E: Element, B: Backend<E>>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for d in [Dims::new(257, 1031), Dims::new(3, 70_001), Dims::new(1, 262_147)] {
        let z = random::<E>(&mut rng, d.len(), -4.0, 4.0);
        let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
        let g = random::<E>(&mut rng, d.len(), -1.0, 1.0);
        for f in [Activation::Relu, Activation::Sigmoid, Activation::Gelu] {
            bias_activation_and_grad(b, f, d, &z, &bias, &g);
        }
        let (alpha, beta) = (E::of(-0.3), E::of(0.7));
        let mut want = bias.clone();
        Reference.sum_rows(d, alpha, &z, beta, &mut want).unwrap();
        let mut out = up(b, &bias);
        b.sum_rows(d, alpha, &up(b, &z), beta, &mut out).unwrap();
        assert_close(&format!("sum_rows {d}"), &down(b, &out, d.cols), &want, tol::<E>());

        let len = d.len();
        for u in updates() {
            let mut state: Vec<Vec<E>> = (0..u.rule.state_count()).map(|_| random(&mut rng, len, 0.0, 0.1)).collect();
            let mut bstate: Vec<B::Buf> = state.iter().map(|s| up(b, s)).collect();
            let (mut ww, mut wb) = (g.clone(), up(b, &g));
            with_state_refs(&mut state, |s| Reference.update(&u, len, &mut ww, &z, s)).unwrap();
            with_state_refs(&mut bstate, |s| b.update(&u, len, &mut wb, &up(b, &z), s)).unwrap();
            let case = format!("update {:?} {len}", u.rule);
            assert_close(&case, &down(b, &wb, len), &ww, tol::<E>());
            for (i, (sb, sw)) in bstate.iter().zip(&state).enumerate() {
                assert_close(&format!("{case} state {i}"), &down(b, sb, len), sw, tol::<E>());
            }
        }
    }
}

/// The mask of every backend is the reference's, from the stream's start and from an offset
/// (a data-parallel shard): the elements `first..first + len` of the mask one process draws.
pub fn dropout<E: Element, B: Backend<E>>(b: &B) {
    for (len, rate) in [(1, 0.5), (129, 0.25), (4096, 0.9)] {
        for first in [0, 1, 77, (1 << 40) + 3] {
            let mut want = vec![E::zero(); len];
            Reference.dropout_mask(len, rate, 99, first, &mut want).unwrap();
            let mut mb = b.alloc(len).unwrap();
            b.dropout_mask(len, rate, 99, first, &mut mb).unwrap();
            assert_eq!(down(b, &mb, len), want, "dropout mask len {len} rate {rate} from {first}");
        }
    }
    let mut whole = vec![E::zero(); 300];
    Reference.dropout_mask(300, 0.5, 7, 0, &mut whole).unwrap();
    let mut tail = b.alloc(100).unwrap();
    b.dropout_mask(100, 0.5, 7, 200, &mut tail).unwrap();
    assert_eq!(down(b, &tail, 100), whole[200..], "a shard's mask is its part of the whole mask");
}

/// Buffers that are too short give a shape error naming the operation (no panic).
pub fn shape_errors<E: Element, B: Backend<E>>(b: &B) {
    let short = b.alloc(5).unwrap();
    let mut out = b.alloc(5).unwrap();
    let s = Gemm { ta: Trans::No, tb: Trans::No, m: 3, n: 3, k: 3 };
    let e = b.gemm(s, E::one(), &short, &short, E::zero(), &mut out).unwrap_err().to_string();
    assert!(e.contains("gemm") && e.contains("3×3"), "{e}");
    // Sizes whose element counts overflow (m·k wraps to 2 here) are refused, not wrapped.
    let huge = Gemm { ta: Trans::No, tb: Trans::No, m: (1 << (usize::BITS - 1)) + 1, n: 2, k: 2 };
    let e = b.gemm(huge, E::one(), &short, &short, E::zero(), &mut out).unwrap_err().to_string();
    assert!(e.contains("gemm") && e.contains("more elements than memory can hold"), "{e}");
    let e = b.activate(Activation::Relu, Dims::new(2, 3), &short, &mut out).unwrap_err().to_string();
    assert!(e.contains("activate") && e.contains("2×3"), "{e}");
    let e = b.hadamard(6, &short, &mut out).unwrap_err().to_string();
    assert!(e.contains("hadamard"), "{e}");
    let mut host = vec![E::zero(); 6];
    assert!(b.download(&short, &mut host).is_err());
    assert!(b.write(&host, &mut out).is_err());
}

/// Every op on empty shapes (no rows, no columns, or both) returns without panicking and agrees
/// with the reference: the loss of an empty batch, the column sums of no rows, GEMMs with a
/// zero dimension (`C ← βC`, or nothing when C is empty).
pub fn empty_shapes<E: Element, B: Backend<E>>(b: &B) {
    let r = Reference;
    let fill = |n: usize| -> Vec<E> { (0..n).map(|i| E::of(0.25 * i as f64 - 0.5)).collect() };
    for d in [Dims::new(3, 0), Dims::new(0, 3), Dims::new(0, 0)] {
        let case = format!("{d}");
        let (bias, z) = (fill(4), fill(4));
        for f in ACTIVATIONS {
            let (mut zb, mut ab) = (up(b, &z), up(b, &fill(4)));
            b.bias_add_activate(f, d, &up(b, &bias), &mut zb, &mut ab).unwrap();
            let (mut zr, mut ar) = (z.clone(), fill(4));
            r.bias_add_activate(f, d, &bias, &mut zr, &mut ar).unwrap();
            assert_eq!((down(b, &zb, 4), down(b, &ab, 4)), (zr.clone(), ar.clone()), "{case} {f} forward");
            let mut db = up(b, &fill(4));
            b.activate_grad(f, d, &zb, &ab, &mut db).unwrap();
            assert_eq!(down(b, &db, 4), fill(4), "{case} {f} grad leaves nothing changed");
        }
        let mut out = up(b, &fill(4));
        b.sum_rows(d, E::one(), &up(b, &z), E::of(2.0), &mut out).unwrap();
        let mut want = fill(4);
        r.sum_rows(d, E::one(), &z, E::of(2.0), &mut want).unwrap();
        assert_eq!(down(b, &out, 4), want, "{case} sum_rows");
        for loss in LOSSES {
            if loss == Loss::SoftmaxCe && d.cols == 0 && d.rows > 0 {
                continue; // a softmax over no classes has no meaning; the architecture forbids it
            }
            let (mut g, mut stats) = (up(b, &fill(4)), up(b, &fill(2)));
            b.loss(loss, d, &up(b, &z), &up(b, &z), &mut g, &mut stats).unwrap();
            let (mut gr, mut sr) = (fill(4), fill(2));
            r.loss(loss, d, &z, &z, &mut gr, &mut sr).unwrap();
            assert_eq!(down(b, &stats, 2), sr, "{case} {loss} stats");
        }
    }
    for (m, n, k) in [(0, 3, 2), (3, 0, 2), (3, 2, 0), (0, 0, 0)] {
        for (ta, tb) in [(Trans::No, Trans::No), (Trans::Yes, Trans::Yes)] {
            let s = Gemm { ta, tb, m, n, k };
            let mut c = up(b, &fill(6));
            b.gemm(s, E::one(), &up(b, &fill(6)), &up(b, &fill(6)), E::of(0.5), &mut c).unwrap();
            let mut want = fill(6);
            r.gemm(s, E::one(), &fill(6), &fill(6), E::of(0.5), &mut want).unwrap();
            assert_eq!(down(b, &c, 6), want, "gemm {m}×{n}×{k} {ta:?} {tb:?}");
        }
    }
}

/// Up/download round trip and zero-filled allocation.
pub fn transfers<E: Element, B: Backend<E>>(b: &B) {
    let host: Vec<E> = (0..129).map(|i| E::of(i as f64 * 0.5 - 3.0)).collect();
    let buf = up(b, &host);
    assert_eq!(b.len(&buf), 129);
    assert_eq!(down(b, &buf, 129), host);
    if let Some(view) = b.host_view(&buf) {
        assert_eq!(view, &host[..], "a host view shows the buffer's values");
    }
    assert!(down(b, &b.alloc(17).unwrap(), 17).iter().all(|&v| v == E::zero()));
    let mut part = b.alloc(10).unwrap();
    b.write(&host[..4], &mut part).unwrap();
    assert_eq!(down(b, &part, 5), [host[0], host[1], host[2], host[3], E::zero()]);
}

/// One whole training step (forward, backward, update) on every loss, with dropout, compared
/// with the same step on the reference backend: parameters after the step and the batch loss.
pub fn training_step<E: Element, B: Backend<E> + Clone>(b: &B) {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let cases = [
        (vec![3, 17, 64, 5], Activation::Relu, Loss::SoftmaxCe, 0.0, "adam"),
        (vec![17, 129, 1], Activation::Tanh, Loss::Bce, 0.25, "sgd"),
        (vec![1, 3, 3], Activation::Sigmoid, Loss::Mse, 0.0, "momentum"),
        (vec![64, 17, 2], Activation::Gelu, Loss::Huber { delta: 0.5 }, 0.1, "rmsprop"),
    ];
    for (sizes, act, loss, dropout, opt) in cases {
        let rows = size(&mut rng);
        let arch = Architecture::new(&sizes, act, loss).unwrap().with_dropout(dropout).unwrap();
        let (n_in, n_out) = (arch.inputs(), arch.outputs());
        let x = random::<E>(&mut rng, rows * n_in, -1.0, 1.0);
        let y: Vec<E> = if !loss.is_classification() {
            random(&mut rng, rows * n_out, -1.0, 1.0)
        } else {
            (0..rows * n_out).map(|i| if (i * 7 + 3) % n_out.max(2) == 0 { E::one() } else { E::zero() }).collect()
        };
        let config = OptimizerConfig::named(opt, 0.01).unwrap();
        let mut want = Network::new(Reference, arch.clone(), Init::Auto, 5).unwrap();
        let mut got = Network::new(b.clone(), arch, Init::Auto, 5).unwrap();
        let (mut ow, mut og) = (want.optimizer(config).unwrap(), got.optimizer(config).unwrap());
        for _ in 0..2 {
            want.train_batch(&x, &y, &mut ow).unwrap();
            got.train_batch(&x, &y, &mut og).unwrap();
        }
        let case = format!("training step {sizes:?} {act} {loss} dropout {dropout} {opt} rows {rows}");
        for (i, (g, w)) in got.parameters_to_host().unwrap().iter().zip(want.parameters_to_host().unwrap()).enumerate()
        {
            assert_close(&format!("{case} tensor {i}"), g, &w, tol::<E>());
        }
        let (sg, sw) = (got.score().unwrap(), want.score().unwrap());
        assert_close(&format!("{case} loss"), &[sg.loss], &[sw.loss], tol::<E>());
    }
}

/// Every operation of `mine` refuses an operand that `other` — another instance of the same
/// backend type (another plugin, device or load) — allocated, whichever operand it is, with
/// `Error::ForeignBuffer` naming that operand; nothing is read through the foreign handle.
pub fn foreign_buffers_are_refused<E: Element, B: Backend<E>>(mine: &B, other: &B) {
    const LEN: usize = 8;
    let (d, s) = (Dims::new(2, 3), Gemm { ta: Trans::No, tb: Trans::Yes, m: 2, n: 2, k: 2 });
    let adam = Update { rule: Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, lr: 0.1, t: 1, l2: 0.0, decay: 0.0 };
    // `count` operands, the one at `foreign` made by `other`; `f` runs the op on them.
    let check = |op: &str, count: usize, f: &dyn Fn(&mut [B::Buf]) -> nabla::Result<()>| {
        for foreign in 0..count {
            let mut bufs: Vec<B::Buf> =
                (0..count).map(|i| if i == foreign { other } else { mine }.alloc(LEN).unwrap()).collect();
            match f(&mut bufs) {
                Err(nabla::Error::ForeignBuffer { .. }) => {}
                r => panic!("{op} with operand {foreign} foreign: {r:?}"),
            }
        }
    };
    let e = E::of(1.0);
    check("write", 1, &|b| mine.write(&[e; 4], &mut b[0]));
    check("download", 1, &|b| mine.download(&b[0], &mut [e; 4]));
    check("gemm", 3, &|b| match b {
        [a, x, c] => mine.gemm(s, e, a, x, e, c),
        _ => unreachable!(),
    });
    check("copy", 2, &|b| match b {
        [x, y] => mine.copy(LEN, x, y),
        _ => unreachable!(),
    });
    check("hadamard", 2, &|b| match b {
        [x, y] => mine.hadamard(LEN, x, y),
        _ => unreachable!(),
    });
    check("axpy", 2, &|b| match b {
        [x, y] => mine.axpy(LEN, e, x, y),
        _ => unreachable!(),
    });
    check("bias_add", 2, &|b| match b {
        [bias, z] => mine.bias_add(d, bias, z),
        _ => unreachable!(),
    });
    for f in [Activation::Tanh, Activation::Softmax] {
        check("activate", 2, &|b| match b {
            [z, a] => mine.activate(f, d, z, a),
            _ => unreachable!(),
        });
        check("bias_add_activate", 3, &|b| match b {
            [bias, z, a] => mine.bias_add_activate(f, d, bias, z, a),
            _ => unreachable!(),
        });
        check("activate_grad", 3, &|b| match b {
            [z, a, delta] => mine.activate_grad(f, d, z, a, delta),
            _ => unreachable!(),
        });
    }
    check("sum_rows", 2, &|b| match b {
        [x, out] => mine.sum_rows(d, e, x, E::zero(), out),
        _ => unreachable!(),
    });
    check("loss", 4, &|b| match b {
        [out, target, grad, stats] => mine.loss(Loss::SoftmaxCe, d, out, target, grad, stats),
        _ => unreachable!(),
    });
    check("update", 4, &|b| match b {
        [w, g, s0, s1] => mine.update(&adam, LEN, w, g, &mut [s0, s1]),
        _ => unreachable!(),
    });
    check("dropout_mask", 1, &|b| mine.dropout_mask(LEN, 0.5, 7, 0, &mut b[0]));
}

/// Prints why a test was skipped, past the test harness's output capture (so that a run without
/// the device shows it without `--nocapture`).
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// Instantiates the conformance suite for a backend: `conformance_suite!(module, Some(backend))`.
/// The expression gives `None` (after printing why) when the backend is not present here.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::common;

            macro_rules! op_test {
                ($op:ident, $t:ty, $test:ident) => {
                    #[test]
                    fn $test() {
                        match $make {
                            Some(b) => common::$op::<$t, _>(&b),
                            None => common::skip(&format!("{} backend not present", stringify!($name))),
                        }
                    }
                };
            }

            op_test!(transfers, f32, transfers_f32);
            op_test!(transfers, f64, transfers_f64);
            op_test!(gemm, f32, gemm_f32);
            op_test!(gemm, f64, gemm_f64);
            op_test!(gemm_beta_zero_ignores_nan, f32, gemm_beta_zero_f32);
            op_test!(gemm_beta_zero_ignores_nan, f64, gemm_beta_zero_f64);
            op_test!(elementwise, f32, elementwise_f32);
            op_test!(elementwise, f64, elementwise_f64);
            op_test!(bias_and_sums, f32, bias_and_sums_f32);
            op_test!(bias_and_sums, f64, bias_and_sums_f64);
            op_test!(activations, f32, activations_f32);
            op_test!(activations, f64, activations_f64);
            op_test!(losses, f32, losses_f32);
            op_test!(losses, f64, losses_f64);
            op_test!(nan_propagates, f32, nan_propagates_f32);
            op_test!(nan_propagates, f64, nan_propagates_f64);
            op_test!(optimizer_updates, f32, updates_f32);
            op_test!(optimizer_updates, f64, updates_f64);
            op_test!(large_elementwise, f32, large_elementwise_f32);
            op_test!(large_elementwise, f64, large_elementwise_f64);
            op_test!(dropout, f32, dropout_f32);
            op_test!(dropout, f64, dropout_f64);
            op_test!(shape_errors, f32, shape_errors_f32);
            op_test!(shape_errors, f64, shape_errors_f64);
            op_test!(empty_shapes, f32, empty_shapes_f32);
            op_test!(empty_shapes, f64, empty_shapes_f64);
            op_test!(training_step, f32, training_step_f32);
            op_test!(training_step, f64, training_step_f64);
        }
    };
}
