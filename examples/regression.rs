//! Regression with the library API: a 1-64-64-1 tanh network learns y = sin(x) from noisy
//! samples; R² on held-out points.
//!
//! `cargo run --release --example regression`

use nabla::data::synthetic::{Spec, generate};
use nabla::data::{Targets, split};
use nabla::{Activation, Loss, Model, OptimizerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = generate("sine", Spec { samples: Some(512), ..Spec::default() }, 3)?;
    let (train, test) = split(&data, 0.25, 3)?;
    let (Targets::Values(train_y), Targets::Values(test_y)) = (&train.targets, &test.targets) else {
        return Err("sine has real-valued targets".into());
    };
    let (train_y, test_y) = (train_y.clone(), test_y.clone());

    let mut model = Model::builder()
        .layers(&[1, 64, 64, 1])
        .activation(Activation::Tanh)
        .loss(Loss::Mse)
        .optimizer(OptimizerConfig::adam(0.01))
        .epochs(200)
        .batch_size(32)
        .seed(3)
        .build()?;
    let history = model.fit(train.features.mapv(|v| v as f32).view(), train_y.mapv(|v| v as f32).view())?;
    println!("final training loss {:.5}", history.last().map_or(f64::NAN, |r| r.train_loss));
    let (loss, m) = model.evaluate_values(test.features.mapv(|v| v as f32).view(), test_y.mapv(|v| v as f32).view())?;
    println!("test: mse {loss:.5}, MAE {:.4}, RMSE {:.4}, R² {:.4}", m.mae, m.rmse, m.r2);
    Ok(())
}
