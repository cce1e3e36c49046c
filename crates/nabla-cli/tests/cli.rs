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
