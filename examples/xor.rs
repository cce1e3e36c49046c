//! XOR with a 2-8-1 tanh network: the smallest problem a single layer cannot solve.
//!
//! `cargo run --release --example xor`

use nabla::{
    Activation, Architecture, BatchSize, HostData, Init, Loss, Network, OpenBlas, OptimizerConfig, Silent, TrainConfig,
    Trainer,
};

fn main() -> nabla::Result<()> {
    // Four samples, one per row: features (x₁, x₂) and the target x₁ ⊕ x₂.
    let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0_f32];
    let y = [0.0, 1.0, 1.0, 0.0_f32];

    // 2 inputs → 8 tanh units → 1 sigmoid output, trained on binary cross-entropy.
    let arch = Architecture::new(&[2, 8, 1], Activation::Tanh, Loss::Bce)?;
    let net = Network::new(OpenBlas::new(Some(1))?, arch, Init::Auto, 42)?;
    let config = TrainConfig { epochs: 1000, batch_size: BatchSize::Rows(4), ..TrainConfig::default() };
    let mut trainer = Trainer::new(net, OptimizerConfig::named("sgd", 0.5)?, config)?;
    trainer.fit(HostData { x: &x, y: &y, rows: 4 }, None, &mut Silent)?;

    let p = trainer.net.predict(&x)?;
    for (input, p) in x.chunks(2).zip(&p) {
        println!("{input:?} → {p:.3}");
    }
    Ok(())
}
