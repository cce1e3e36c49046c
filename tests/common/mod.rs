//! What several test files share: the boundary check between two instances of a backend (the
//! op-by-op suite is the conformance kit, `crates/nabla-backend-tests`).

use nabla::backend::{Backend, Dims, Gemm, Trans};
use nabla::{Activation, Element, Loss, Rule, Update};

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
