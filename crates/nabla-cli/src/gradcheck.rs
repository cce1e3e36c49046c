//! `nabla gradcheck`: backprop against central differences, per layer, in f64.

use std::process::ExitCode;

use nabla::{Backend, Error, Network, Result, gradient_check, randomize_biases};
use serde_json::json;

use crate::args::GradcheckArgs;
use crate::model::{architecture, backend, dataset, matrices};

/// Checks the gradients of the model on `--batch-size` evenly spaced samples.
pub fn run(args: &GradcheckArgs) -> Result<ExitCode> {
    if !(args.epsilon > 0.0 && args.epsilon.is_finite()) {
        return Err(Error::invalid("--epsilon", format!("{}; give a small positive step like 1e-5", args.epsilon)));
    }
    let r = args.config().resolve()?;
    let data = dataset(&r)?;
    let arch = architecture(&r, &data)?;
    let rows = args.batch_size.clamp(1, data.len());
    // Evenly spaced samples, so that every class of an ordered data set is represented.
    let picks: Vec<usize> = (0..rows).map(|i| i * data.len() / rows).collect();
    let (x, y) = matrices::<f64>(&data.select(&picks), arch.outputs())?;
    let mut net = Network::new(backend(&r)?, arch.clone(), r.init, r.train.seed)?;
    randomize_biases(&mut net, 0.1, r.train.seed)?;
    let report = gradient_check(&mut net, &x, &y, args.epsilon)?;
    let passed = report.max_rel_error < args.tolerance;
    if args.json {
        println!(
            "{}",
            json!({
                "backend": Backend::<f64>::name(net.backend()),
                "dataset": data.name,
                "layers": arch.sizes,
                "activations": arch.activations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "loss": arch.loss.to_string(),
                "samples": rows,
                "epsilon": report.epsilon,
                "parameters": report.parameters,
                "per_layer": report.layers,
                "max_rel_error": report.max_rel_error,
                "tolerance": args.tolerance,
                "passed": passed,
            })
        );
    } else {
        println!(
            "gradient check: {:?} {} → {}, loss {}, {} samples, ε = {:e}",
            arch.sizes,
            r.hidden,
            arch.output_activation(),
            arch.loss,
            rows,
            report.epsilon
        );
        println!("{:>5}  {:>14}  {:>14}  {:>14}", "layer", "rel err ∂W", "rel err ∂b", "max abs err");
        for l in &report.layers {
            println!(
                "{:>5}  {:>14.3e}  {:>14.3e}  {:>14.3e}",
                l.layer, l.weight_rel_error, l.bias_rel_error, l.max_abs_error
            );
        }
        let verdict = if passed { "within" } else { "ABOVE" };
        println!("max relative error {:.3e} ({verdict} the tolerance {:e})", report.max_rel_error, args.tolerance);
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
