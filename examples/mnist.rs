//! MNIST with the library API: 784-512-256-10 ReLU, Adam, dropout, test accuracy on t10k.
//!
//! `cargo run --release --example mnist -- ../shared/data/mnist [epochs]`
//! (or set NABLA_DATA to the folder that holds `mnist/`).

use std::path::PathBuf;

use nabla::data::Targets;
use nabla::data::idx::load_mnist;
use nabla::data::scale::{Scaler, Scaling};
use nabla::{Activation, Loss, Model, OptimizerConfig, Schedule};
use ndarray::Array1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("NABLA_DATA").unwrap_or_else(|_| "../shared/data".into())).join("mnist")
    });
    let epochs: usize = args.next().map(|e| e.parse()).transpose()?.unwrap_or(10);

    let (mut train, mut test) = load_mnist(&dir)?;
    let scaler = Scaler::fit(Scaling::Div255, train.features.view());
    scaler.apply(&mut train)?;
    scaler.apply(&mut test)?;
    let labels = |t: &Targets| -> Array1<usize> {
        match t {
            Targets::Classes { labels, .. } => Array1::from(labels.clone()),
            Targets::Values(_) => Array1::zeros(0),
        }
    };
    let (train_y, test_y) = (labels(&train.targets), labels(&test.targets));

    let mut model = Model::builder()
        .layers(&[784, 512, 256, 10])
        .activation(Activation::Relu)
        .loss(Loss::SoftmaxCe)
        .dropout(0.2)
        .optimizer(OptimizerConfig::adam(1e-3))
        .schedule(Schedule::Cosine { warmup: 0, min_factor: 0.0 })
        .epochs(epochs)
        .batch_size(128)
        .seed(1)
        .build()?;
    for report in model.fit(train.features.mapv(|v| v as f32).view(), train_y.view())? {
        println!(
            "epoch {:>2}: loss {:.4}, accuracy {:.4}, {:.0} samples/s",
            report.epoch,
            report.train_loss,
            report.train_accuracy.unwrap_or(0.0),
            report.samples_per_sec
        );
    }
    let (loss, metrics) = model.evaluate_classes(test.features.mapv(|v| v as f32).view(), test_y.view())?;
    println!("test: loss {loss:.4}, accuracy {:.4}", metrics.accuracy);
    Ok(())
}
