//! One check per group of ops, each comparing a backend with the reference on seeded data.
//!
//! A check never panics: a backend error becomes a failing (or, for [`Error::Unsupported`],
//! an unsupported) case of its row.
//!
//! [`Error::Unsupported`]: nabla_core::Error::Unsupported

use nabla_core::backend::{Backend, Dims, Gemm, Trans};
use nabla_core::{Activation, Element, Loss, Reference, Result, Rule, Update, with_state_refs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cases::{SIZES, down, random, size, tol, up, update_name, updates};
use crate::report::Sink;

/// `NN`, `NT`, `TN` or `TT`: the transposes of A and B.
fn trans_name(ta: Trans, tb: Trans) -> &'static str {
    match (ta, tb) {
        (Trans::No, Trans::No) => "NN",
        (Trans::No, Trans::Yes) => "NT",
        (Trans::Yes, Trans::No) => "TN",
        (Trans::Yes, Trans::Yes) => "TT",
    }
}

/// `C ← α op(A) op(B) + β C` on every transpose pair, sizes 1 to 129, three (α, β) pairs; and
/// with β = 0 over a C full of NaN (the BLAS convention: C's old contents do not matter).
pub fn gemm<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
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
                    let want = (|| {
                        let mut c = c0.clone();
                        Reference.gemm(s, alpha, &a, &x, beta, &mut c)?;
                        Ok(c)
                    })();
                    let got = (|| {
                        let mut c = up(b, &c0)?;
                        b.gemm(s, alpha, &up(b, &a)?, &up(b, &x)?, beta, &mut c)?;
                        down(b, &c, m * n)
                    })();
                    let case = format!("{m}×{n}×{k} α={alpha} β={beta}");
                    sink.close("gemm", trans_name(ta, tb), &case, got, want, tol::<E>());
                }
            }
        }
    }
    let s = Gemm { ta: Trans::No, tb: Trans::Yes, m: 3, n: 17, k: 64 };
    let a = random::<E>(&mut rng, 3 * 64, -1.0, 1.0);
    let x = random::<E>(&mut rng, 17 * 64, -1.0, 1.0);
    let want = (|| {
        let mut c = vec![E::zero(); 3 * 17];
        Reference.gemm(s, E::one(), &a, &x, E::zero(), &mut c)?;
        Ok(c)
    })();
    let got = (|| {
        let mut c = up(b, &[E::nan(); 3 * 17])?;
        b.gemm(s, E::one(), &up(b, &a)?, &up(b, &x)?, E::zero(), &mut c)?;
        down(b, &c, 3 * 17)
    })();
    sink.close("gemm", "β=0 over NaN", "3×17×64", got, want, tol::<E>());
}

/// `y ← x ⊙ y` and `y ← x` on every size.
pub fn elementwise<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &len in &SIZES {
        let x = random::<E>(&mut rng, len, -2.0, 2.0);
        let y = random::<E>(&mut rng, len, -2.0, 2.0);
        let want = (|| {
            let mut want = y.clone();
            Reference.hadamard(len, &x, &mut want)?;
            Ok(want)
        })();
        let got = (|| {
            let mut yb = up(b, &y)?;
            b.hadamard(len, &up(b, &x)?, &mut yb)?;
            down(b, &yb, len)
        })();
        sink.close("hadamard", "-", &format!("{len}"), got, want, tol::<E>());

        let got = (|| {
            let mut yb = up(b, &y)?;
            b.copy(len, &up(b, &x)?, &mut yb)?;
            down(b, &yb, len)
        })();
        sink.close("copy", "-", &format!("{len}"), got, Ok(x), 0.0);
    }
}

/// `Z ← Z + 1 bᵀ` and `out ← α Σ_rows X + β out` on random shapes.
pub fn bias_and_sums<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for _ in 0..12 {
        let d = Dims::new(size(&mut rng), size(&mut rng));
        let z = random::<E>(&mut rng, d.len(), -2.0, 2.0);
        let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
        let want = (|| {
            let mut want = z.clone();
            Reference.bias_add(d, &bias, &mut want)?;
            Ok(want)
        })();
        let got = (|| {
            let mut zb = up(b, &z)?;
            b.bias_add(d, &up(b, &bias)?, &mut zb)?;
            down(b, &zb, d.len())
        })();
        sink.close("bias_add", "-", &format!("{d}"), got, want, tol::<E>());

        // β = 0 over NaN, then α and β both in play.
        sum_rows(b, sink, "β=0 over NaN", d, (&z, &vec![E::nan(); d.cols]), (1.0, 0.0));
        sum_rows(b, sink, "α β", d, (&z, &bias), (-0.3, 0.7));
    }
}

/// `out ← α Σ_rows X + β out` from `out = start`, against the reference.
fn sum_rows<E: Element, B: Backend<E>>(
    b: &B,
    sink: &mut Sink,
    variant: &str,
    d: Dims,
    (x, start): (&[E], &[E]),
    (alpha, beta): (f64, f64),
) {
    let (alpha, beta) = (E::of(alpha), E::of(beta));
    let want = (|| {
        let mut want = start.to_vec();
        Reference.sum_rows(d, alpha, &x.to_vec(), beta, &mut want)?;
        Ok(want)
    })();
    let got = (|| {
        let mut out = up(b, start)?;
        b.sum_rows(d, alpha, &up(b, x)?, beta, &mut out)?;
        down(b, &out, d.cols)
    })();
    sink.close("sum_rows", variant, &d.to_string(), got, want, tol::<E>());
}

/// `bias_add_activate` on `z`, then `activate_grad` on `g` at its result, against the reference.
fn bias_activation_and_grad<E: Element, B: Backend<E>>(
    b: &B,
    sink: &mut Sink,
    (f, label): (Activation, &str),
    d: Dims,
    (z, bias, g): (&[E], &[E], &[E]),
) {
    let (variant, case) = (format!("{f}{label}"), d.to_string());
    let want = (|| {
        let (mut zw, mut aw) = (z.to_vec(), vec![E::zero(); d.len()]);
        Reference.bias_add_activate(f, d, &bias.to_vec(), &mut zw, &mut aw)?;
        Ok(vec![zw, aw])
    })();
    let got = (|| {
        let (mut zb, mut ab) = (up(b, z)?, b.alloc(d.len())?);
        b.bias_add_activate(f, d, &up(b, bias)?, &mut zb, &mut ab)?;
        Ok(vec![down(b, &zb, d.len())?, down(b, &ab, d.len())?])
    })();
    for (i, op) in ["bias_add_activate z", "bias_add_activate a"].into_iter().enumerate() {
        sink.close(op, &variant, &case, output(&got, i), output(&want, i), tol::<E>());
    }
    let Ok([zw, aw]) = want.as_deref() else { return };
    let want = (|| {
        let mut want = g.to_vec();
        Reference.activate_grad(f, d, zw, aw, &mut want)?;
        Ok(want)
    })();
    let got = (|| {
        let mut gb = up(b, g)?;
        b.activate_grad(f, d, &up(b, zw)?, &up(b, aw)?, &mut gb)?;
        down(b, &gb, d.len())
    })();
    sink.close("activate_grad", &variant, &case, got, want, tol::<E>());
}

/// Output `i` of a call that produced several, each recorded as a row of its own; an error is
/// given to every row again (errors are not `Clone`: their I/O source is not).
fn output<E: Element>(outputs: &Result<Vec<Vec<E>>>, i: usize) -> Result<Vec<E>> {
    match outputs {
        Ok(all) => Ok(all.get(i).cloned().unwrap_or_default()),
        Err(nabla_core::Error::Unsupported { backend, op }) => {
            Err(nabla_core::Error::Unsupported { backend: backend.clone(), op: op.clone() })
        }
        Err(other) => Err(nabla_core::Error::backend("conformance", other.to_string())),
    }
}

/// `A ← σ(Z)`, `σ(Z + 1 bᵀ)` and `δ ← δ ⊙ σ'(Z)` for every activation on random shapes.
pub fn activations<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for f in Activation::ALL {
        for _ in 0..4 {
            let d = Dims::new(size(&mut rng), size(&mut rng));
            let z = random::<E>(&mut rng, d.len(), -4.0, 4.0);
            let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
            let g = random::<E>(&mut rng, d.len(), -1.0, 1.0);
            let want = (|| {
                let mut a = vec![E::zero(); d.len()];
                Reference.activate(f, d, &z, &mut a)?;
                Ok(a)
            })();
            let got = (|| {
                let mut ab = b.alloc(d.len())?;
                b.activate(f, d, &up(b, &z)?, &mut ab)?;
                down(b, &ab, d.len())
            })();
            sink.close("activate", &f.to_string(), &d.to_string(), got, want, tol::<E>());
            bias_activation_and_grad(b, sink, (f, ""), d, (&z, &bias, &g));
        }
    }
}

/// The targets of a loss: one-hot rows for softmax-ce, 0/1 for bce, values otherwise.
fn targets<E: Element>(rng: &mut ChaCha8Rng, l: Loss, d: Dims) -> Vec<E> {
    match l {
        Loss::SoftmaxCe => (0..d.rows)
            .flat_map(|_| {
                let hot = rng.random_range(0..d.cols);
                (0..d.cols).map(move |j| if j == hot { E::one() } else { E::zero() })
            })
            .collect(),
        Loss::Bce => (0..d.len()).map(|_| E::of(f64::from(rng.random_range(0..2u8)))).collect(),
        _ => random(rng, d.len(), -3.0, 3.0),
    }
}

/// Every loss: its output error, its value and its count of correct predictions.
pub fn losses<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for l in Loss::ALL {
        for _ in 0..5 {
            let rows = size(&mut rng);
            let cols = if l == Loss::SoftmaxCe { size(&mut rng).max(2) } else { size(&mut rng) };
            let d = Dims::new(rows, cols);
            let out = random::<E>(&mut rng, d.len(), -3.0, 3.0);
            let target = targets::<E>(&mut rng, l, d);
            let want = (|| {
                let (mut g, mut s) = (vec![E::zero(); d.len()], vec![E::zero(); 2]);
                Reference.loss(l, d, &out, &target, &mut g, &mut s)?;
                Ok(vec![g, s[..1].to_vec(), s[1..].to_vec()])
            })();
            let got = (|| {
                let (mut g, mut s) = (b.alloc(d.len())?, b.alloc(2)?);
                b.loss(l, d, &up(b, &out)?, &up(b, &target)?, &mut g, &mut s)?;
                let s = down(b, &s, 2)?;
                Ok(vec![down(b, &g, d.len())?, s[..1].to_vec(), s[1..].to_vec()])
            })();
            let (variant, case) = (l.to_string(), d.to_string());
            for (i, (op, tol)) in
                [("loss grad", tol::<E>()), ("loss value", tol::<E>()), ("loss correct", 0.0)].into_iter().enumerate()
            {
                sink.close(op, &variant, &case, output(&got, i), output(&want, i), tol);
            }
        }
    }
}

/// A NaN in a pre-activation (a vector's first lane, its last, a row's scalar tail) stays NaN
/// through every activation and gives a NaN loss; its neighbours are unaffected (but for a
/// row-wise activation, which spreads it over its row).
pub fn nan_propagates<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let d = Dims::new(2, 17);
    let nans = [0, 7, 16, 17 + 8];
    let mut z = random::<E>(&mut ChaCha8Rng::seed_from_u64(17), d.len(), -4.0, 4.0);
    nans.iter().for_each(|&i| z[i] = E::nan());
    for f in Activation::ALL {
        let ok = (|| {
            let (mut zb, mut ab) = (up(b, &z)?, b.alloc(d.len())?);
            b.bias_add_activate(f, d, &up(b, &vec![E::of(0.25); d.cols])?, &mut zb, &mut ab)?;
            let a = down(b, &ab, d.len())?;
            Ok(a.iter().enumerate().all(|(i, a)| a.is_nan() == (f.is_row_wise() || nans.contains(&i))))
        })();
        sink.holds("NaN through bias_add_activate", &f.to_string(), "2×17", ok, "NaN exactly where z had NaN");
    }
    for l in Loss::ALL {
        let ok = (|| {
            let (mut gb, mut sb) = (b.alloc(d.len())?, b.alloc(2)?);
            b.loss(l, d, &up(b, &z)?, &up(b, &vec![E::zero(); d.len()])?, &mut gb, &mut sb)?;
            Ok(down(b, &sb, 2)?[0].is_nan())
        })();
        sink.holds("NaN through loss", &l.to_string(), "2×17", ok, "a NaN loss of a NaN output");
    }
}

/// Three steps of every update rule from a random state, parameters and state compared.
pub fn optimizer_updates<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for u in updates() {
        let len = size(&mut rng);
        let w = random::<E>(&mut rng, len, -1.0, 1.0);
        let mut state: Vec<Vec<E>> =
            (0..u.rule.state_count()).map(|i| random(&mut rng, len, 0.0, 0.1 * (i + 1) as f64)).collect();
        if matches!(u.rule, Rule::Rprop { .. }) {
            state[0] = random(&mut rng, len, -1.0, 1.0);
        }
        let grads: Vec<Vec<E>> = (0..3).map(|_| random(&mut rng, len, -1.0, 1.0)).collect();
        compare_update(b, sink, (&u, ""), (&w, &state), &grads, &format!("{len}"));
    }
}

/// Runs `u` once per gradient on the reference and on `b` from the same `(w, state)`, and
/// records the parameters and each state tensor.
fn compare_update<E: Element, B: Backend<E>>(
    b: &B,
    sink: &mut Sink,
    (u, label): (&Update, &str),
    (w, state): (&[E], &[Vec<E>]),
    grads: &[Vec<E>],
    case: &str,
) {
    let len = w.len();
    let steps = |t: u64| Update { t: u.t + t, ..*u };
    let want = (|| {
        let (mut w, mut state) = (w.to_vec(), state.to_vec());
        for (t, g) in (0..).zip(grads) {
            with_state_refs(&mut state, |s| Reference.update(&steps(t), len, &mut w, g, s))?;
        }
        Ok([vec![w], state].concat())
    })();
    let got = (|| {
        let mut bstate = state.iter().map(|s| up(b, s)).collect::<Result<Vec<_>>>()?;
        let mut wb = up(b, w)?;
        for (t, g) in (0..).zip(grads) {
            let gb = up(b, g)?;
            with_state_refs(&mut bstate, |s| b.update(&steps(t), len, &mut wb, &gb, s))?;
        }
        let state = bstate.iter().map(|s| down(b, s, len)).collect::<Result<Vec<_>>>()?;
        Ok([vec![down(b, &wb, len)?], state].concat())
    })();
    let variant = format!("{}{label}", update_name(u));
    for tensor in 0..=state.len() {
        let op = if tensor == 0 { "update w".to_string() } else { format!("update state {}", tensor - 1) };
        sink.close(&op, &variant, case, output(&got, tensor), output(&want, tensor), tol::<E>());
    }
}

/// Element-wise passes large enough for a backend to split them across threads (OpenBLAS does
/// above 2 × 65,536 elements), on odd shapes so that the parts are uneven.
pub fn large_elementwise<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for d in [Dims::new(257, 1031), Dims::new(3, 70_001), Dims::new(1, 262_147)] {
        let z = random::<E>(&mut rng, d.len(), -4.0, 4.0);
        let bias = random::<E>(&mut rng, d.cols, -1.0, 1.0);
        let g = random::<E>(&mut rng, d.len(), -1.0, 1.0);
        for f in [Activation::Relu, Activation::Sigmoid, Activation::Gelu] {
            bias_activation_and_grad(b, sink, (f, " (large)"), d, (&z, &bias, &g));
        }
        sum_rows(b, sink, "α β (large)", d, (&z, &bias), (-0.3, 0.7));
        for u in updates() {
            let state: Vec<Vec<E>> = (0..u.rule.state_count()).map(|_| random(&mut rng, d.len(), 0.0, 0.1)).collect();
            let u = (&u, " (large)");
            compare_update(b, sink, u, (&g, &state), std::slice::from_ref(&z), &d.len().to_string());
        }
    }
}

/// The dropout mask is the reference's, from the stream's start and from an offset (a
/// data-parallel shard draws the elements `first..first + len` of the whole mask).
pub fn dropout<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    for (len, rate) in [(1, 0.5), (129, 0.25), (4096, 0.9)] {
        for first in [0, 1, 77, (1 << 40) + 3] {
            let want = (|| {
                let mut want = vec![E::zero(); len];
                Reference.dropout_mask(len, rate, 99, first, &mut want)?;
                Ok(want)
            })();
            let got = (|| {
                let mut mb = b.alloc(len)?;
                b.dropout_mask(len, rate, 99, first, &mut mb)?;
                down(b, &mb, len)
            })();
            sink.close("dropout_mask", &format!("rate {rate}"), &format!("{len} from {first}"), got, want, 0.0);
        }
    }
}

/// Up/download round trip, partial writes, zero-filled allocation and host views.
pub fn transfers<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let host: Vec<E> = (0..129).map(|i| E::of(i as f64 * 0.5 - 3.0)).collect();
    let got = (|| {
        let buf = up(b, &host)?;
        if b.len(&buf) != host.len() {
            return Ok(vec![]);
        }
        down(b, &buf, host.len())
    })();
    sink.close("upload/download", "-", "129", got, Ok(host.clone()), 0.0);
    let ok = (|| {
        let buf = up(b, &host)?;
        Ok(b.host_view(&buf).is_none_or(|view| view == &host[..]))
    })();
    sink.holds("host_view", "-", "129", ok, "a host view shows the buffer's values");
    let got = (|| down(b, &b.alloc(17)?, 17))();
    sink.close("alloc", "zeroed", "17", got, Ok(vec![E::zero(); 17]), 0.0);
    let got = (|| {
        let mut part = b.alloc(10)?;
        b.write(&host[..4], &mut part)?;
        down(b, &part, 5)
    })();
    sink.close("write", "prefix", "4 of 10", got, Ok([&host[..4], &[E::zero()]].concat()), 0.0);
}

/// Buffers that are too short, and sizes whose element counts overflow, give a shape error
/// naming the operation (no panic, no wrapped size).
pub fn shape_errors<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let says = |r: Result<()>, words: &[&str]| -> Result<bool> {
        Ok(match r {
            Err(e) => {
                let e = e.to_string();
                words.iter().all(|w| e.contains(w))
            }
            Ok(()) => false,
        })
    };
    let (short, mut out) = match (b.alloc(5), b.alloc(5)) {
        (Ok(s), Ok(o)) => (s, o),
        (Err(e), _) | (_, Err(e)) => return sink.holds("shape errors", "-", "alloc", Err(e), ""),
    };
    let s = Gemm { ta: Trans::No, tb: Trans::No, m: 3, n: 3, k: 3 };
    let ok = says(b.gemm(s, E::one(), &short, &short, E::zero(), &mut out), &["gemm", "3×3"]);
    sink.holds("shape errors", "gemm short", "3×3×3 on 5", ok, "a shape error naming gemm and 3×3");
    let huge = Gemm { ta: Trans::No, tb: Trans::No, m: (1 << (usize::BITS - 1)) + 1, n: 2, k: 2 };
    let ok = says(b.gemm(huge, E::one(), &short, &short, E::zero(), &mut out), &["gemm", "more elements than memory"]);
    sink.holds("shape errors", "gemm overflow", "(2⁶³+1)×2×2", ok, "an overflow error naming gemm");
    let ok = says(b.activate(Activation::Relu, Dims::new(2, 3), &short, &mut out), &["activate", "2×3"]);
    sink.holds("shape errors", "activate", "2×3 on 5", ok, "a shape error naming activate and 2×3");
    let ok = says(b.hadamard(6, &short, &mut out), &["hadamard"]);
    sink.holds("shape errors", "hadamard", "6 on 5", ok, "a shape error naming hadamard");
    let mut host = vec![E::zero(); 6];
    sink.holds("shape errors", "download", "6 from 5", Ok(b.download(&short, &mut host).is_err()), "an error");
    sink.holds("shape errors", "write", "6 into 5", Ok(b.write(&host, &mut out).is_err()), "an error");
}

/// Every op on empty shapes (no rows, no columns, or both) returns and agrees with the
/// reference: nothing written, the loss of an empty batch, `C ← βC` for a GEMM with k = 0.
pub fn empty_shapes<E: Element, B: Backend<E>>(b: &B, sink: &mut Sink) {
    let fill = |n: usize| -> Vec<E> { (0..n).map(|i| E::of(0.25 * i as f64 - 0.5)).collect() };
    for d in [Dims::new(3, 0), Dims::new(0, 3), Dims::new(0, 0)] {
        let case = d.to_string();
        for f in Activation::ALL {
            let want = (|| {
                let (mut z, mut a) = (fill(4), fill(4));
                Reference.bias_add_activate(f, d, &fill(4), &mut z, &mut a)?;
                Ok([z, a, fill(4)].concat())
            })();
            let got = (|| {
                let (mut zb, mut ab) = (up(b, &fill(4))?, up(b, &fill(4))?);
                b.bias_add_activate(f, d, &up(b, &fill(4))?, &mut zb, &mut ab)?;
                let mut db = up(b, &fill(4))?;
                b.activate_grad(f, d, &zb, &ab, &mut db)?;
                Ok([down(b, &zb, 4)?, down(b, &ab, 4)?, down(b, &db, 4)?].concat())
            })();
            sink.close("empty: activation", &f.to_string(), &case, got, want, 0.0);
        }
        let want = (|| {
            let mut want = fill(4);
            Reference.sum_rows(d, E::one(), &fill(4), E::of(2.0), &mut want)?;
            Ok(want)
        })();
        let got = (|| {
            let mut out = up(b, &fill(4))?;
            b.sum_rows(d, E::one(), &up(b, &fill(4))?, E::of(2.0), &mut out)?;
            down(b, &out, 4)
        })();
        sink.close("empty: sum_rows", "-", &case, got, want, 0.0);
        for l in Loss::ALL {
            if l == Loss::SoftmaxCe && d.cols == 0 && d.rows > 0 {
                continue; // a softmax over no classes has no meaning; the architecture forbids it
            }
            let want = (|| {
                let (mut g, mut s) = (fill(4), fill(2));
                Reference.loss(l, d, &fill(4), &fill(4), &mut g, &mut s)?;
                Ok(s)
            })();
            let got = (|| {
                let (mut g, mut s) = (up(b, &fill(4))?, up(b, &fill(2))?);
                b.loss(l, d, &up(b, &fill(4))?, &up(b, &fill(4))?, &mut g, &mut s)?;
                down(b, &s, 2)
            })();
            sink.close("empty: loss", &l.to_string(), &case, got, want, 0.0);
        }
    }
    for (m, n, k) in [(0, 3, 2), (3, 0, 2), (3, 2, 0), (0, 0, 0)] {
        for (ta, tb) in [(Trans::No, Trans::No), (Trans::Yes, Trans::Yes)] {
            let s = Gemm { ta, tb, m, n, k };
            let want = (|| {
                let mut want = fill(6);
                Reference.gemm(s, E::one(), &fill(6), &fill(6), E::of(0.5), &mut want)?;
                Ok(want)
            })();
            let got = (|| {
                let mut c = up(b, &fill(6))?;
                b.gemm(s, E::one(), &up(b, &fill(6))?, &up(b, &fill(6))?, E::of(0.5), &mut c)?;
                down(b, &c, 6)
            })();
            sink.close("empty: gemm", trans_name(ta, tb), &format!("{m}×{n}×{k}"), got, want, 0.0);
        }
    }
}
