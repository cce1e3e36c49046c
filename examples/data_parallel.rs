//! Data-parallel training from Rust: the same program on every rank, started by a launcher.
//!
//! ```sh
//! cargo build --release --features mpi --example data_parallel
//! mpirun -n 2 target/release/examples/data_parallel      # or just run it: a world of one
//! ```
//!
//! Every rank builds the same network and data, `Trainer::distribute` makes it one rank of the
//! job (rank 0's weights, a shard of every global batch, gradients all-reduced between backward
//! and update), and every rank ends with the same weights; rank 0 reports.

use nabla::data::synthetic::{Spec, generate};
use std::rc::Rc;

use nabla::distributed::Collective;
use nabla::mpi::World;
use nabla::{
    Activation, Architecture, BatchSize, HostData, Init, Loss, Network, OptimizerConfig, Silent, TrainConfig, Trainer,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let world = World::from_launcher()?.map(Rc::new);
    let outcome = train(world.clone());
    if let (Err(e), Some(w)) = (&outcome, &world) {
        // An error on this rank alone would leave the others waiting in a collective.
        eprintln!("rank {}: {e}", w.rank());
        w.abort(1);
    }
    outcome
}

fn train(world: Option<Rc<World>>) -> Result<(), Box<dyn std::error::Error>> {
    let data = generate("spirals", Spec::default(), 7)?;
    let x: Vec<f32> = data.features.iter().map(|&v| v as f32).collect();
    let y: Vec<f32> = data.target_matrix(3)?.iter().map(|&v| v as f32).collect();
    let arch = Architecture::new(&[2, 64, 64, 3], Activation::Relu, Loss::SoftmaxCe)?;
    let net = Network::new(nabla::OpenBlas::new(Some(1))?, arch, Init::Auto, 7)?;
    let config = TrainConfig { epochs: 200, batch_size: BatchSize::Rows(32), seed: 7, ..TrainConfig::default() };
    let mut trainer = Trainer::new(net, OptimizerConfig::named("adam", 0.01)?, config)?;
    if let Some(world) = world {
        trainer.distribute(Box::new(world))?;
    }
    trainer.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent)?;
    let (rank, size) = trainer.world();
    if let (0, Some(last)) = (rank, trainer.history.last()) {
        println!(
            "{size} rank(s): loss {:.4}, accuracy {:.3} after {} epochs",
            last.train_loss,
            last.train_accuracy.unwrap_or(0.0),
            last.epoch
        );
    }
    Ok(())
}
