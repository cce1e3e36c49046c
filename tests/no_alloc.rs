//! After the first step, a training step allocates nothing: a counting global allocator watches
//! the thread that trains (OpenBLAS's own threads use their own pool and are not Rust allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nabla::backend::Backend;
use nabla::{Activation, Architecture, Init, Loss, Network, OptimizerConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Trains 20 steps after a first one and counts the allocations in between.
fn steps_allocate<B: Backend<f32> + Clone>(
    backend: B,
    sizes: &[usize],
    act: Activation,
    loss: Loss,
    dropout: f64,
    opt: &str,
) -> usize {
    let arch = Architecture::new(sizes, act, loss).unwrap().with_dropout(dropout).unwrap();
    let rows = 32;
    let x: Vec<f32> = (0..rows * arch.inputs()).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..rows * arch.outputs())
        .map(|i| if i % arch.outputs() == i / arch.outputs() % arch.outputs() { 1.0 } else { 0.0 })
        .collect();
    let mut net = Network::new(backend.clone(), arch, Init::Auto, 1).unwrap();
    let mut opt = net.optimizer(OptimizerConfig::named(opt, 0.01).unwrap()).unwrap();
    let (xb, yb) = (backend.upload(&x).unwrap(), backend.upload(&y).unwrap());
    let first = allocations();
    net.train_step(&xb, &yb, rows, &mut opt).unwrap();
    assert!(allocations() > first, "the counter sees the first step's workspace allocations");
    let before = allocations();
    for _ in 0..20 {
        net.train_step(&xb, &yb, rows, &mut opt).unwrap();
        net.score().unwrap();
    }
    // A smaller (last, partial) batch reuses the same workspace.
    net.train_step(&xb, &yb, rows / 2, &mut opt).unwrap();
    allocations() - before
}

#[test]
fn training_steps_allocate_nothing_after_the_first() {
    let cases = [
        (vec![784, 512, 256, 10], Activation::Relu, Loss::SoftmaxCe, 0.0, "sgd"),
        (vec![2, 16, 16, 1], Activation::Sigmoid, Loss::Bce, 0.0, "sgd"),
        (vec![5, 17, 3], Activation::Tanh, Loss::Mse, 0.5, "adam"),
        // Adam over a 500 × 300 layer: OpenBLAS splits the update across its 2 threads.
        (vec![300, 500, 10], Activation::Relu, Loss::SoftmaxCe, 0.0, "adam"),
        (vec![5, 17, 3], Activation::LeakyRelu { alpha: 0.1 }, Loss::Huber { delta: 1.0 }, 0.2, "momentum"),
    ];
    for (sizes, act, loss, dropout, opt) in cases {
        let r = steps_allocate(nabla::Reference, &sizes, act, loss, dropout, opt);
        assert_eq!(r, 0, "reference backend, {sizes:?}: {r} allocations in 21 steps");
        let o = steps_allocate(nabla::OpenBlas::new(Some(2)).unwrap(), &sizes, act, loss, dropout, opt);
        assert_eq!(o, 0, "openblas backend, {sizes:?}: {o} allocations in 21 steps");
        let native = nabla::OpenBlas::with_gemm(Some(2), nabla::GemmProvider::Native).unwrap();
        let n = steps_allocate(native, &sizes, act, loss, dropout, opt);
        assert_eq!(n, 0, "openblas backend with the native GEMM, {sizes:?}: {n} allocations in 21 steps");
        let a = steps_allocate(
            nabla::AnyBackend::from_name("openblas", &Default::default()).unwrap(),
            &sizes,
            act,
            loss,
            dropout,
            opt,
        );
        assert_eq!(a, 0, "AnyBackend(openblas), {sizes:?}: {a} allocations in 21 steps");
    }
}
