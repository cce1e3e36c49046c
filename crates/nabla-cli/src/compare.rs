//! `nabla compare --backends A,B[,C…]`: the same seeded network trained on each backend, and
//! how far each lands from the first — per-epoch losses, the final weights, and the first op of
//! the first step whose output leaves the conformance tolerance.

use std::process::ExitCode;

use nabla::{AnyBackend, Backend, Element, EpochReport, Error, HostData, LayerValue, Network, Result, Silent, Trainer};
use nabla_backend_tests::rel_error;
use serde_json::{Value, json};

use crate::args::CompareArgs;
use crate::config::{Config, Resolved};
use crate::model::{Prepared, backend, matrices, prepare};

/// One backend's run.
struct Run<E> {
    backend: String,
    history: Vec<EpochReport>,
    /// Every parameter tensor after training (`W¹, b¹, W², b², …`).
    params: Vec<Vec<E>>,
    /// The first step's values, in the order they are computed.
    trace: Vec<(String, Vec<E>)>,
}

/// A backend's distance from the first.
struct Distance {
    /// Per epoch both ran: `|loss − loss₀| / |loss₀|` (∞ when one of them is not finite).
    epoch_loss: Vec<f64>,
    /// Epochs run, when not the first backend's (early stopping decided otherwise).
    epochs_differ: Option<usize>,
    /// The largest relative difference over the final tensors, and that tensor's name.
    weights: (f64, String),
    /// The first value of the first step beyond the tolerance: `(op, error)`.
    first_divergence: Option<(String, f64)>,
    /// The largest error of the first step: `(op, error)`.
    first_step_worst: (String, f64),
}

/// Trains on each backend, prints the report, exits 1 when a backend's first step diverges.
pub fn run(args: &CompareArgs) -> Result<ExitCode> {
    refuse_train_only_flags(args)?;
    if args.backends.len() < 2 {
        return Err(Error::invalid(
            "--backends",
            "give at least two backends, comma-separated (e.g. reference,openblas)",
        ));
    }
    let file = match &args.train.config {
        Some(path) => crate::train::read_config(path)?,
        None => Config::default(),
    };
    let mut resolved = file.overlay(&args.train.config())?.resolve()?;
    resolved.backend = args.backends[0].clone();
    if resolved.f64 { compare::<f64>(args, &resolved) } else { compare::<f32>(args, &resolved) }
}

/// The flags of `nabla train` that make no sense for several backends at once.
fn refuse_train_only_flags(args: &CompareArgs) -> Result<()> {
    let t = &args.train;
    let given = [
        ("--backend", t.run.backend.is_some()),
        ("--device", t.run.device.is_some()),
        ("--save", t.save.is_some()),
        ("--checkpoint", t.checkpoint.is_some()),
        ("--checkpoint-every", t.checkpoint_every.is_some()),
        ("--resume", t.resume.is_some()),
        ("--plot-boundary", t.plot_boundary.is_some()),
        ("--inspect-every", t.inspect_every.is_some()),
        ("--check-consistency", t.check_consistency),
    ];
    match given.iter().find(|(_, on)| *on) {
        Some((flag, _)) => Err(Error::invalid(
            *flag,
            "`nabla compare` does not take it (name the backends with --backends A,B; cuda:N picks a GPU)",
        )),
        None => Ok(()),
    }
}

fn compare<E: Element>(args: &CompareArgs, r: &Resolved) -> Result<ExitCode>
where
    AnyBackend: Backend<E>,
{
    let Prepared { train, val, arch, backend: first, .. } = prepare(r)?;
    let classification = matches!(train.task(), nabla::data::Task::Classification { .. });
    let (x, y) = matrices::<E>(&train, arch.outputs())?;
    let val = val.as_ref().map(|v| matrices::<E>(v, arch.outputs())).transpose()?;
    let config = nabla::TrainConfig { accuracy: classification, ..r.train.clone() };
    // The first step's batch: the first rows of the training set, in order.
    let rows = config.batch_size.rows(train.len());
    let batch = (&x[..rows * arch.inputs()], &y[..rows * arch.outputs()]);
    let mut runs = Vec::with_capacity(args.backends.len());
    for (i, name) in args.backends.iter().enumerate() {
        let b = if i == 0 { first.clone() } else { backend(&Resolved { backend: name.clone(), ..r.clone() })? };
        let trace = first_step(Network::new(b.clone(), arch.clone(), r.init, r.train.seed)?, r, batch)?;
        let mut t = Trainer::new(Network::new(b, arch.clone(), r.init, r.train.seed)?, r.optimizer, config.clone())?;
        let val_data = val.as_ref().map(|(vx, vy)| HostData { x: vx, y: vy, rows: vx.len() / arch.inputs() });
        t.fit(HostData { x: &x, y: &y, rows: train.len() }, val_data, &mut Silent)?;
        runs.push(Run { backend: name.clone(), params: t.net.parameters_to_host()?, history: t.history, trace });
    }
    let tol = nabla_backend_tests::tolerance::<E>();
    let distances: Vec<Distance> = runs[1..].iter().map(|run| distance(&runs[0], run, tol)).collect();
    let title = format!(
        "{:?} {} → {}, {}, {}, {} epochs, {}, seed {}",
        arch.sizes,
        r.hidden,
        arch.output_activation(),
        arch.loss,
        r.optimizer,
        r.train.epochs,
        E::DTYPE,
        r.train.seed
    );
    if let Some(path) = &args.train.plot {
        let curves: Vec<(String, Vec<EpochReport>)> =
            runs.iter().map(|r| (r.backend.clone(), r.history.clone())).collect();
        let differences: Vec<Vec<f64>> =
            std::iter::once(Vec::new()).chain(distances.iter().map(|d| d.epoch_loss.clone())).collect();
        crate::plot::compare(path, &curves, &differences)?;
    }
    let report =
        if args.markdown { markdown(&title, &runs, &distances, tol) } else { text(&title, &runs, &distances, tol) };
    if !args.train.json {
        println!("{report}");
    }
    if args.train.json {
        println!("{}", to_json(&title, &runs, &distances, tol));
    }
    let agree = distances.iter().all(|d| d.first_divergence.is_none());
    Ok(if agree { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The first step's values on `net`, in the order the driver computes them: each layer's `Z`
/// and `A`, the output error, each `δ` going down, each gradient, the loss, and each tensor
/// after one update.
fn first_step<E: Element>(
    mut net: Network<E, AnyBackend>,
    r: &Resolved,
    (x, y): (&[E], &[E]),
) -> Result<Vec<(String, Vec<E>)>>
where
    AnyBackend: Backend<E>,
{
    let rows = x.len() / net.architecture().inputs();
    let score = net.compute_gradients(x, y)?;
    let arch = net.architecture().clone();
    let last = arch.layers() - 1;
    let mut trace = Vec::new();
    for l in 0..arch.layers() {
        trace.push((
            format!("layer {} Z = A Wᵀ + b (gemm, bias_add)", l + 1),
            net.layer_values(l, LayerValue::Z, rows)?,
        ));
        let f = arch.activations[l];
        trace.push((format!("layer {} A = σ(Z) (activate {f})", l + 1), net.layer_values(l, LayerValue::A, rows)?));
    }
    let output = format!("output error δ{} (loss {})", last + 1, arch.loss);
    trace.push((output, net.layer_values(last, LayerValue::Delta, rows)?));
    trace.push((format!("loss value ({})", arch.loss), vec![E::of(score.loss)]));
    for l in (0..last).rev() {
        let f = arch.activations[l];
        let name = format!("layer {} δ = (δ W) ⊙ σ'(Z) (gemm, activate_grad {f})", l + 1);
        trace.push((name, net.layer_values(l, LayerValue::Delta, rows)?));
    }
    let grads = net.gradients_to_host()?;
    for l in (0..arch.layers()).rev() {
        trace.push((format!("layer {} ∂C/∂W = δᵀ A (gemm)", l + 1), grads[2 * l].clone()));
        trace.push((format!("layer {} ∂C/∂b = Σ δ (sum_rows)", l + 1), grads[2 * l + 1].clone()));
    }
    let mut opt = net.optimizer(r.optimizer)?;
    net.update(&mut opt)?;
    let rule = r.optimizer.rule.code_name().to_ascii_lowercase();
    for (i, p) in net.parameters_to_host()?.into_iter().enumerate() {
        let tensor = if i.is_multiple_of(2) { "W" } else { "b" };
        trace.push((format!("layer {} {tensor} after the update ({rule})", i / 2 + 1), p));
    }
    Ok(trace)
}

/// The name of parameter tensor `i` (`W¹, b¹, W², …`) as in a model file.
fn tensor_name(i: usize) -> String {
    let [weight, bias] = nabla::checkpoint::tensor_names("", i / 2);
    if i.is_multiple_of(2) { weight } else { bias }
}

fn distance<E: Element>(first: &Run<E>, run: &Run<E>, tol: f64) -> Distance {
    let epoch_loss =
        first.history.iter().zip(&run.history).map(|(a, b)| loss_difference(a.train_loss, b.train_loss)).collect();
    let epochs_differ = (run.history.len() != first.history.len()).then_some(run.history.len());
    let weights = first
        .params
        .iter()
        .zip(&run.params)
        .enumerate()
        .map(|(i, (a, b))| (rel_error(b, a), tensor_name(i)))
        .fold((0.0, String::new()), |worst, d| if d.0 > worst.0 { d } else { worst });
    let errors: Vec<(String, f64)> =
        first.trace.iter().zip(&run.trace).map(|((op, a), (_, b))| (op.clone(), rel_error(b, a))).collect();
    let first_divergence = errors.iter().find(|(_, e)| *e > tol).cloned();
    let first_step_worst =
        errors.into_iter().fold((String::new(), 0.0), |worst, e| if e.1 > worst.1 { e } else { worst });
    Distance { epoch_loss, epochs_differ, weights, first_divergence, first_step_worst }
}

/// `|b − a| / |a|`: 0 when equal (NaN with NaN included), ∞ when one is not finite.
fn loss_difference(a: f64, b: f64) -> f64 {
    if a == b || a.is_nan() && b.is_nan() {
        0.0
    } else if !(a.is_finite() && b.is_finite()) {
        f64::INFINITY
    } else {
        (b - a).abs() / a.abs().max(f64::MIN_POSITIVE)
    }
}

/// At most 20 epochs of a long run: evenly spaced, the first and the last included.
fn shown_epochs(epochs: usize) -> Vec<usize> {
    if epochs <= 20 {
        return (0..epochs).collect();
    }
    let mut shown: Vec<usize> = (0..20).map(|i| i * (epochs - 1) / 19).collect();
    shown.dedup();
    shown
}

/// The report's cells: a header and rows (epochs, then the summary lines).
fn tables<E: Element>(runs: &[Run<E>], distances: &[Distance], tol: f64) -> (Vec<Vec<String>>, Vec<String>) {
    let mut head = vec!["epoch".to_string(), format!("{} loss", runs[0].backend)];
    for r in &runs[1..] {
        head.push(format!("{} loss", r.backend));
        head.push("rel. diff".into());
    }
    let epochs = runs.iter().map(|r| r.history.len()).min().unwrap_or(0);
    let mut rows = vec![head];
    for e in shown_epochs(epochs) {
        let mut row = vec![(e + 1).to_string(), format!("{:.6}", runs[0].history[e].train_loss)];
        for (r, d) in runs[1..].iter().zip(distances) {
            row.push(format!("{:.6}", r.history[e].train_loss));
            row.push(format!("{:.1e}", d.epoch_loss[e]));
        }
        rows.push(row);
    }
    let base = &runs[0].backend;
    let mut summary = Vec::new();
    for (r, d) in runs[1..].iter().zip(distances) {
        let loss_max = d.epoch_loss.iter().copied().fold(0.0, f64::max);
        summary.push(format!("{}: largest per-epoch loss difference {loss_max:.1e}", r.backend));
        if let Some(n) = d.epochs_differ {
            summary.push(format!("{}: ran {n} epochs, {base} {}", r.backend, runs[0].history.len()));
        }
        summary.push(match d.weights {
            (0.0, _) => format!("{}: final weights identical to {base}'s", r.backend),
            (e, ref tensor) => {
                format!("{}: final weights differ from {base}'s by at most {e:.1e} (relative, in {tensor})", r.backend)
            }
        });
        summary.push(match (&d.first_divergence, &d.first_step_worst) {
            (Some((op, e)), _) => format!("{}: first step diverges first at `{op}`: {e:.1e} > {tol:.0e}", r.backend),
            (None, (_, 0.0)) => format!("{}: first step identical at every op", r.backend),
            (None, (op, e)) => {
                format!("{}: first step within {tol:.0e} at every op (largest {e:.1e}, at `{op}`)", r.backend)
            }
        });
    }
    (rows, summary)
}

/// `(20 of N epochs shown; --json has them all)` when the table skips epochs.
fn epochs_note<E>(runs: &[Run<E>]) -> String {
    let epochs = runs.iter().map(|r| r.history.len()).min().unwrap_or(0);
    let shown = shown_epochs(epochs).len();
    if shown < epochs { format!(" ({shown} of {epochs} epochs shown; --json has them all)") } else { String::new() }
}

fn text<E: Element>(title: &str, runs: &[Run<E>], distances: &[Distance], tol: f64) -> String {
    let (rows, summary) = tables(runs, distances, tol);
    let cols = rows[0].len();
    let width: Vec<usize> = (0..cols).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!("compare: {title}{}\n", epochs_note(runs));
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&summary.join("\n"));
    out
}

fn markdown<E: Element>(title: &str, runs: &[Run<E>], distances: &[Distance], tol: f64) -> String {
    let (rows, summary) = tables(runs, distances, tol);
    let line = |r: &[String]| format!("| {} |", r.join(" | "));
    let mut out = format!("**compare**: {title}{}\n\n{}\n", epochs_note(runs), line(&rows[0]));
    out.push_str(&format!("|{}\n", "---|".repeat(rows[0].len())));
    for r in &rows[1..] {
        out.push_str(&line(r));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&summary.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n"));
    out
}

fn to_json<E: Element>(title: &str, runs: &[Run<E>], distances: &[Distance], tol: f64) -> Value {
    let backends: Vec<Value> = std::iter::once(json!({ "backend": runs[0].backend, "losses": losses(&runs[0]) }))
        .chain(runs[1..].iter().zip(distances).map(|(r, d)| {
            json!({
                "backend": r.backend,
                "losses": losses(r),
                "loss_rel_diff": d.epoch_loss.iter().map(|v| v.is_finite().then_some(*v)).collect::<Vec<_>>(),
                "epochs": r.history.len(),
                "weights_max_rel_diff": d.weights.0,
                "weights_worst_tensor": d.weights.1,
                "first_step_diverges_at": d.first_divergence.as_ref().map(|(op, _)| op),
                "first_step_divergence": d.first_divergence.as_ref().map(|(_, e)| e),
                "first_step_max_error": d.first_step_worst.1,
                "first_step_max_error_at": d.first_step_worst.0,
            })
        }))
        .collect();
    let agree = distances.iter().all(|d| d.first_divergence.is_none());
    json!({ "run": title, "dtype": E::DTYPE.name(), "tolerance": tol, "agree": agree, "backends": backends })
}

fn losses<E>(run: &Run<E>) -> Vec<f64> {
    run.history.iter().map(|e| e.train_loss).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, train_loss: f64) -> EpochReport {
        EpochReport {
            epoch,
            lr: 0.1,
            train_loss,
            train_accuracy: None,
            val_loss: None,
            val_accuracy: None,
            seconds: 0.0,
            samples_per_sec: 0.0,
            steps: 1,
        }
    }

    fn run(backend: &str, losses: &[f64], z: f64, w: f64) -> Run<f64> {
        let history = losses.iter().enumerate().map(|(i, &l)| epoch(i + 1, l)).collect();
        let trace = vec![("layer 1 Z".to_string(), vec![1.0, z]), ("layer 1 δ".to_string(), vec![2.0])];
        Run { backend: backend.into(), history, params: vec![vec![w, 1.0], vec![0.5]], trace }
    }

    /// The first value beyond the tolerance is named, a loss that blew up on one side is an
    /// infinite difference (not a small one), and a run that stopped at another epoch says so.
    #[test]
    fn distances_name_the_first_divergence_and_see_blown_up_losses() {
        let base = run("reference", &[1.0, 0.5, 0.25], 3.0, 1.0);
        let same = distance(&base, &run("same", &[1.0, 0.5, 0.25], 3.0, 1.0), 1e-10);
        assert!(same.first_divergence.is_none() && same.weights.0 == 0.0 && same.epochs_differ.is_none());
        let off = distance(&base, &run("off", &[1.0, f64::NAN], 3.3, 1.5), 1e-10);
        let (op, error) = off.first_divergence.clone().unwrap();
        assert_eq!(op, "layer 1 Z");
        assert!((error - 0.1).abs() < 1e-12, "{error}");
        assert_eq!(off.epoch_loss, [0.0, f64::INFINITY]);
        assert_eq!(off.epochs_differ, Some(2));
        assert_eq!(off.weights, (0.5, "layers.0.weight".to_string()));
        let text = text("t", &[base, run("off", &[1.0, f64::NAN], 3.3, 1.5)], &[off], 1e-10);
        assert!(text.contains("off: first step diverges first at `layer 1 Z`"), "{text}");
        assert!(text.contains("off: ran 2 epochs, reference 3"), "{text}");
        assert!(text.contains("largest per-epoch loss difference inf"), "{text}");
    }
}
