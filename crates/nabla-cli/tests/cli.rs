//! The command-line contract: flags, JSON output, exit codes.

use std::process::{Command, Output};

fn nabla(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nabla")).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last stdout line, parsed as JSON.
fn last_json(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {out}\n{}", stderr(o)))
}

#[test]
fn train_spirals_json_contract() {
    let o = nabla(&[
        "train",
        "--dataset",
        "spirals",
        "--layers",
        "2,64,64,3",
        "--activation",
        "relu",
        "--loss",
        "softmax-ce",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--epochs",
        "200",
        "--batch-size",
        "32",
        "--seed",
        "7",
        "--backend",
        "openblas",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "only the JSON line with --json");
    let j = last_json(&o);
    for key in ["backend", "dataset", "epochs", "final_loss", "train_accuracy", "seconds", "samples_per_sec"] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["backend"], "openblas");
    assert_eq!(j["dataset"], "spirals");
    assert_eq!(j["epochs"], 200);
    assert!(j["train_accuracy"].as_f64().unwrap() >= 0.9, "{j}");
    assert!(j["final_loss"].as_f64().unwrap() < 0.3, "{j}");
}

#[test]
fn train_prints_a_line_per_epoch_and_defaults_work() {
    let o = nabla(&["train", "--epochs", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let epochs: Vec<&str> = out.lines().filter(|l| l.starts_with("epoch")).collect();
    assert_eq!(epochs.len(), 5, "{out}");
    assert!(epochs[0].contains("loss") && epochs[0].contains("acc") && epochs[0].contains("samples/s"), "{out}");
}

#[test]
fn no_subcommand_trains_the_default_set() {
    let o = nabla(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("epoch 200/200"));
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 9] = [
        (&["train", "--activation", "swish"], "--activation"),
        (&["train", "--loss", "hinge"], "--loss"),
        (&["train", "--backend", "tpu"], "backend"),
        (&["train", "--dataset", "mnist-ish"], "dataset"),
        (&["train", "--layers", "2,0,3"], "--layers"),
        (&["train", "--layers", ""], "--layers"),
        (&["train", "--lr", "NaN"], "learning rate"),
        (&["train", "--lr", "-0.1"], "learning rate"),
        (&["train", "--batch-size", "0"], "--batch-size"),
    ];
    for (args, flag) in cases {
        let o = nabla(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(flag), "{args:?}: {err}");
    }
    let o = nabla(&["train", "--activation", "swish"]);
    assert!(stderr(&o).contains("leaky-relu"), "accepted values are listed: {}", stderr(&o));
    let o = nabla(&["train", "--layers", "3,8,3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("2 features"), "{}", stderr(&o));
}

#[test]
fn gradcheck_reports_per_layer_and_fails_above_tolerance() {
    let o = nabla(&["gradcheck", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["max_rel_error"].as_f64().unwrap() < 1e-6, "{j}");
    assert_eq!(j["per_layer"].as_array().unwrap().len(), 3);
    let o = nabla(&["gradcheck", "--tolerance", "1e-30"]);
    assert_eq!(o.status.code(), Some(1), "above tolerance exits non-zero");
    assert!(stdout(&o).contains("ABOVE"));
}

#[test]
fn backends_lists_what_is_usable() {
    let o = nabla(&["backends", "--json"]);
    assert!(o.status.success());
    let j = last_json(&o);
    let list = j["backends"].as_array().unwrap();
    let find = |n: &str| list.iter().find(|b| b["backend"] == n).cloned().unwrap();
    assert_eq!(find("reference")["usable"], true);
    assert_eq!(find("openblas")["usable"], true);
}

#[test]
fn regression_and_f64() {
    let o = nabla(&[
        "train",
        "--dataset",
        "sine",
        "--activation",
        "tanh",
        "--lr",
        "0.05",
        "--epochs",
        "100",
        "--dtype",
        "f64",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["final_loss"].as_f64().unwrap() < 0.05, "{j}");
    assert!(j.get("train_accuracy").is_none(), "no accuracy for regression: {j}");
}

#[test]
fn every_optimizer_by_name_on_the_spirals() {
    for (opt, lr) in [
        ("momentum", "0.05"),
        ("nesterov", "0.05"),
        ("adagrad", "0.05"),
        ("rmsprop", "0.003"),
        ("adam", "0.003"),
        ("adamw", "0.003"),
    ] {
        let o = nabla(&["train", "--optimizer", opt, "--lr", lr, "--epochs", "200", "--batch-size", "32", "--json"]);
        assert!(o.status.success(), "{opt}: {}", stderr(&o));
        let j = last_json(&o);
        assert!(j["train_accuracy"].as_f64().unwrap() >= 0.9, "{opt}: {j}");
        assert_eq!(j["optimizer"], opt);
    }
}

#[test]
fn checkpoint_and_resume_continue_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let common =
        ["train", "--optimizer", "adam", "--lr", "0.003", "--dropout", "0.1", "--schedule", "cosine:2", "--json"];
    let straight = last_json(&nabla(&[&common[..], &["--epochs", "6"]].concat()));
    // The same run, checkpointed every 3 epochs; then resumed from the epoch-3 file.
    let first = nabla(&[&common[..], &["--epochs", "6", "--checkpoint", ckpt_s, "--checkpoint-every", "3"]].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    let at3 = dir.path().join("at3.safetensors");
    let o = nabla(&[&common[..], &["--epochs", "3", "--checkpoint", at3.to_str().unwrap()]].concat());
    assert!(o.status.success());
    let resumed = nabla(&["train", "--resume", at3.to_str().unwrap(), "--epochs", "6", "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let resumed = last_json(&resumed);
    assert_eq!(resumed["epochs"], 6);
    assert_eq!(straight["final_loss"], resumed["final_loss"], "bit-identical: {straight} vs {resumed}");
    assert_eq!(straight["final_loss"], last_json(&first)["final_loss"]);
}

#[test]
fn save_validation_and_early_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let o = nabla(&[
        "train",
        "--dataset",
        "moons",
        "--noise",
        "0.3",
        "--val-split",
        "0.25",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "500",
        "--early-stopping",
        "--patience",
        "5",
        "--save",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert_eq!(j["stopped_early"], true, "{j}");
    assert!(j["epochs"].as_u64().unwrap() < 500);
    assert!(j["val_loss"].as_f64().is_some() && j["val_accuracy"].as_f64().unwrap() > 0.8, "{j}");
    assert_eq!(j["val_metrics"]["confusion"].as_array().unwrap().len(), 2);
    assert!(model.exists());
}

#[test]
fn bad_hyper_parameters_are_refused_before_training() {
    let cases: [(&[&str], &str); 6] = [
        (&["train", "--dropout", "1.5"], "--dropout"),
        (&["train", "--early-stopping", "--patience", "0"], "--patience"),
        (&["train", "--optimizer", "lion"], "--optimizer"),
        (&["train", "--schedule", "sometimes"], "--schedule"),
        (&["train", "--val-split", "1.0"], "--val-split"),
        (&["train", "--optimizer", "rprop"], "full-batch"),
    ];
    for (args, needle) in cases {
        let o = nabla(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).contains("epoch 1/"), "{args:?} trained anyway");
    }
}

#[test]
fn resume_refuses_a_model_file_and_a_truncated_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    assert!(nabla(&["train", "--epochs", "1", "--save", model.to_str().unwrap()]).status.success());
    let o = nabla(&["train", "--resume", model.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("model file"), "{}", stderr(&o));
    let cut = dir.path().join("cut.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = nabla(&["train", "--resume", cut.to_str().unwrap()]);
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}
