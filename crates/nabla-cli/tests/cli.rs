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
        (&["train", "--activation", "no-such-activation"], "--activation"),
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
    let o = nabla(&["train", "--activation", "no-such-activation"]);
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
    // What the CPU backend runs on: the ISA with its measured FMA peak, OpenBLAS's build and core.
    let cpu = &j["cpu"];
    assert!(["AVX-512", "AVX2+FMA", "baseline (no AVX2)"].contains(&cpu["isa"].as_str().unwrap()), "{cpu}");
    assert!(cpu["fma_peak_gflops"].as_f64().unwrap() > 0.5, "{cpu}");
    assert!(cpu["openblas_config"].as_str().unwrap().contains("OpenBLAS"), "{cpu}");
    assert!(!cpu["openblas_core"].as_str().unwrap().is_empty(), "{cpu}");
    let text = nabla(&["backends"]);
    assert!(stdout(&text).contains("FMA peak") && stdout(&text).contains("OpenBLAS: "), "{}", stdout(&text));
}

/// NCCL that is absent, or installed as `libnccl.so.2` only (which cudarc does not load), is
/// reported with what to install; nothing panics.
#[cfg(feature = "nccl")]
#[test]
fn backends_says_why_nccl_is_not_usable() {
    let o = nabla(&["backends", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let detail = last_json(&o)["mpi"]["detail"].as_str().unwrap().to_owned();
    if detail.contains("NCCL compiled in and found") {
        eprintln!("NCCL is installed here; the runtime-only case is not checked");
        return;
    }
    assert!(detail.contains("NCCL (libnccl.so) was not found"), "{detail}");
    // A runtime-only install: a library named libnccl.so.2 and no libnccl.so.
    let dir = tempfile::tempdir().unwrap();
    let (src, lib) = (dir.path().join("empty.c"), dir.path().join("libnccl.so.2"));
    std::fs::write(&src, "int nabla_test_symbol;\n").unwrap();
    let cc = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status();
    assert!(cc.is_ok_and(|s| s.success()), "a C compiler builds the stand-in library");
    let o = Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args(["backends", "--json"])
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let detail = last_json(&o)["mpi"]["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("libnccl.so.2 only") && detail.contains("libnccl-dev"), "{detail}");
}

/// `--gemm auto` times both providers on each shape and reports the choice with both times;
/// a forced provider takes every shape untimed; the CPU report and the FMA-peak fraction are in
/// the JSON; a bad value is a usage error naming the accepted ones, in bench and train alike.
#[test]
fn bench_reports_the_cpu_and_the_gemm_provider_of_each_shape() {
    let bench = |gemm: &str| {
        let args = ["bench", "--workloads", "W1", "--threads", "1", "--reps", "1", "--steps-scale", "0.01", "--json"];
        nabla(&[&args[..], &["--max-seconds", "0.1", "--gemm", gemm]].concat())
    };
    let o = bench("auto");
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["cpu"]["fma_peak_gflops"].as_f64().unwrap() > 0.5, "{}", j["cpu"]);
    let r = &j["results"][0];
    let (fraction, peak) = (r["fma_peak_fraction"].as_f64().unwrap(), r["fma_peak_gflops"].as_f64().unwrap());
    assert!(fraction > 0.0 && fraction.is_finite(), "{r}");
    assert!((r["gflops"].as_f64().unwrap() / peak - fraction).abs() < 1e-9, "{r}");
    let shapes = j["gemm_choices"][0]["shapes"].as_array().unwrap();
    let forward = shapes.iter().find(|s| s["shape"] == "128x512x784-NT").unwrap_or_else(|| panic!("{shapes:?}"));
    assert!(["openblas", "native"].contains(&forward["provider"].as_str().unwrap()), "{forward}");
    let (ob, nat) = (forward["openblas_ms"].as_f64().unwrap(), forward["native_ms"].as_f64().unwrap());
    let faster = if nat < nabla::openblas::choice::NATIVE_MARGIN * ob { "native" } else { "openblas" };
    assert_eq!(forward["provider"], faster, "{forward}");

    let o = bench("native");
    assert!(o.status.success(), "{}", stderr(&o));
    let shapes = last_json(&o)["gemm_choices"][0]["shapes"].as_array().unwrap().clone();
    assert!(!shapes.is_empty() && shapes.iter().all(|s| s["provider"] == "native" && s["native_ms"].is_null()));

    let o = bench("fastest");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("auto, openblas, native"), "{}", stderr(&o));
    let o = nabla(&["train", "--dataset", "xor", "--epochs", "1", "--gemm", "fastest"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--gemm") && stderr(&o).contains("auto, openblas, native"), "{}", stderr(&o));
    // Products large enough for the native GEMM (128 × 256 × 256).
    let args = ["train", "--dataset", "spirals", "--layers", "2,256,256,3", "--batch-size", "128", "--epochs", "2"];
    let o = nabla(&[&args[..], &["--gemm", "native", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
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

/// The shared data folder beside the checkout, if present (CI may not have it).
fn shared_data() -> Option<std::path::PathBuf> {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    d.join("sklearn/iris.csv").exists().then_some(d)
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn config_files_and_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "run.toml",
        "[data]\nsource = \"moons\"\n[model]\nlayers = [2, 16, 2]\nactivation = \"tanh\"\n[optimizer]\nname = \"adam\"\nlr = 0.01\n[training]\nepochs = 30\n",
    );
    let o = nabla(&["train", "--config", cfg.to_str().unwrap(), "--epochs", "7", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert_eq!(j["epochs"], 7, "the flag overrides the file");
    assert_eq!(j["optimizer"], "adam");
    assert_eq!(j["layers"], serde_json::json!([2, 16, 2]));
    let bad = write(dir.path(), "bad.toml", "[model]\nlayers = [2, 3, 2]\nwidth = 5\n");
    let o = nabla(&["train", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("width"), "the unknown key is named: {}", stderr(&o));
}

#[test]
fn every_example_config_parses() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in ["mnist", "digits", "iris", "diabetes", "spirals"] {
        let path = examples.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        // `--epochs 0` checks the whole configuration without training.
        let o = nabla(&[
            "train",
            "--config",
            path.to_str().unwrap(),
            "--epochs",
            "0",
            "--json",
            "--data-dir",
            "/nonexistent",
        ]);
        if name == "spirals" {
            assert!(o.status.success(), "{name}: {}", stderr(&o));
        } else {
            // The files are not there: the error names the missing file, not the config.
            assert!(stderr(&o).contains("/nonexistent"), "{name}: {}", stderr(&o));
        }
        assert!(text.contains("[model]"));
    }
}

#[test]
fn csv_data_eval_predict_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("x1,x2,label\n");
    for i in 0..120 {
        let (a, b) = ((i % 11) as f32 / 10.0, (i % 7) as f32 / 6.0);
        csv.push_str(&format!("{a},{b},{}\n", usize::from(a + b > 1.0)));
    }
    let data = write(dir.path(), "two.csv", &csv);
    let model = dir.path().join("m.safetensors");
    let spec = format!("csv:{}", data.display());
    let o = nabla(&[
        "train",
        "--data",
        &spec,
        "--target",
        "label",
        "--layers",
        "2,16,2",
        "--optimizer",
        "adam",
        "--lr",
        "0.02",
        "--epochs",
        "60",
        "--test-split",
        "0.25",
        "--save",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["test_accuracy"].as_f64().unwrap() > 0.85, "{j}");
    assert_eq!(j["test_metrics"]["confusion"].as_array().unwrap().len(), 2);

    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", &spec, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = last_json(&o);
    assert!(e["test_accuracy"].as_f64().unwrap() > 0.85 && e["final_loss"].as_f64().is_some(), "{e}");
    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", &spec]);
    assert!(stdout(&o).contains("confusion matrix"), "{}", stdout(&o));

    let input = write(dir.path(), "x.csv", "x1,x2\n0.9,0.8\n0.1,0.1\n");
    let out = dir.path().join("y.csv");
    let o = nabla(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = y.lines().collect();
    assert_eq!(lines[0], "p0,p1,class");
    assert!(lines[1].ends_with(",1") && lines[2].ends_with(",0"), "{y}");

    let o = nabla(&["inspect", "--model", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let i = last_json(&o);
    assert_eq!(i["parameters"], 2 * 16 + 16 + 16 * 2 + 2);
    assert_eq!(i["layers"][0]["shape"], serde_json::json!([16, 2]));
    assert_eq!(i["scaling"], "standard");
}

#[test]
fn malformed_data_is_an_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.csv", "a,b,label\n1,2,0\n3,x,1\n");
    let o = nabla(&["train", "--data", &format!("csv:{}", bad.display())]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("line 3, column 2"), "{}", stderr(&o));
    let o = nabla(&["train", "--data", "idx:/nonexistent-dir"]);
    assert_ne!(o.status.code(), Some(0));
    let o = nabla(&["train", "--data", "parquet:x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("csv:PATH"), "{}", stderr(&o));
    // A model on data with another feature count.
    let model = dir.path().join("m.safetensors");
    assert!(nabla(&["train", "--epochs", "1", "--save", model.to_str().unwrap()]).status.success());
    let three = write(dir.path(), "three.csv", "a,b,c,label\n1,2,3,0\n");
    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", &format!("csv:{}", three.display())]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("3 features") && stderr(&o).contains("takes 2"), "{}", stderr(&o));
}

#[test]
fn plots_and_inspection() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg, regions) = (dir.path().join("c.png"), dir.path().join("c.svg"), dir.path().join("r.png"));
    let o = nabla(&[
        "train",
        "--epochs",
        "20",
        "--val-split",
        "0.2",
        "--plot",
        png.to_str().unwrap(),
        "--plot-boundary",
        regions.to_str().unwrap(),
        "--inspect-every",
        "10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    let inspection = j["inspection"].as_array().unwrap();
    assert_eq!(inspection.len(), 2, "epochs 10 and 20");
    let layer = &inspection[0]["layers"][0];
    for key in ["delta_norm", "weight_grad_norm", "bias_grad_norm", "weight_norm", "update_ratio", "dead_fraction"] {
        assert!(layer[key].as_f64().is_some(), "{key}: {layer}");
    }
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    assert!(std::fs::metadata(&regions).unwrap().len() > 10_000);
    assert!(nabla(&["train", "--epochs", "3", "--plot", svg.to_str().unwrap()]).status.success());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let o = nabla(&["train", "--epochs", "3", "--plot", dir.path().join("c.gif").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn real_small_sets_when_present() {
    let Some(data) = shared_data() else { return eprintln!("skipped: ../shared/data not present") };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let o = nabla(&[
        "train",
        "--config",
        examples.join("iris.toml").to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["test_accuracy"].as_f64().unwrap() >= 0.9, "{j}");
}

#[test]
fn mnist_idx_when_present() {
    let Some(data) = shared_data() else { return eprintln!("skipped: ../shared/data not present") };
    let o = nabla(&[
        "train",
        "--data",
        &format!("idx:{}", data.join("mnist").display()),
        "--layers",
        "784,64,10",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = last_json(&o);
    assert!(j["test_accuracy"].as_f64().unwrap() > 0.9, "{j}");
}

#[test]
fn bench_json_contract_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("b.png");
    let o = nabla(&[
        "bench",
        "--backends",
        "reference,openblas",
        "--workloads",
        "W2",
        "--threads",
        "1",
        "--reps",
        "1",
        "--steps-scale",
        "0.01",
        "--max-seconds",
        "0.2",
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = last_json(&o)["results"].as_array().unwrap().clone();
    let backends: Vec<&str> = results.iter().map(|r| r["backend"].as_str().unwrap()).collect();
    assert_eq!(backends, ["reference", "openblas"]);
    for r in &results {
        assert_eq!(r["workload"], "tiny");
        assert_eq!(r["batch"], 32);
        let (samples, steps) = (r["samples_per_sec"].as_f64().unwrap(), r["steps_per_sec"].as_f64().unwrap());
        assert!(steps > 0.0 && (samples / steps - 32.0).abs() < 1e-6, "{r}");
        assert!(r["gemm_bound_fraction"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["peak_gflops"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(std::fs::metadata(dir.path().join("b-tiny.png")).unwrap().len() > 5_000);

    // --only-steps skips the GEMM bound and reports memory.
    let o = nabla(&[
        "bench",
        "--workloads",
        "W2",
        "--threads",
        "1",
        "--reps",
        "1",
        "--steps-scale",
        "0.01",
        "--only-steps",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = &last_json(&o)["results"][0];
    assert!(r["gemm_bound_ms"].is_null() && r["peak_fraction"].is_null(), "{r}");
    if cfg!(target_os = "linux") {
        assert!(r["rss_peak_mib"].as_f64().unwrap() >= r["rss_before_mib"].as_f64().unwrap(), "{r}");
        assert!(r["rss_peak_mib"].as_f64().unwrap() > 1.0, "{r}");
    }

    let o = nabla(&["bench", "--workloads", "W9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("W2") && stderr(&o).contains("tiny"), "{}", stderr(&o));
}

/// Rewrites metadata entry `key` of a safetensors file with `edit`, keeping the tensors.
fn edit_metadata(path: &std::path::Path, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    use safetensors::tensor::{SafeTensors, TensorView};
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = meta.metadata().clone().unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&metadata[key]).unwrap();
    edit(&mut value);
    metadata.insert(key.to_string(), value.to_string());
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView<'_>)> = st.tensors();
    let out = safetensors::serialize(views, Some(metadata)).unwrap();
    std::fs::write(path, out).unwrap();
}

fn train_moons(dir: &std::path::Path, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (model, ckpt) = (dir.join("m.safetensors"), dir.join("c.safetensors"));
    let mut args = vec![
        "train",
        "--dataset",
        "moons",
        "--layers",
        "2,8,2",
        "--epochs",
        "3",
        "--save",
        model.to_str().unwrap(),
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = nabla(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (model, ckpt)
}

#[test]
fn crafted_model_metadata_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ckpt) = train_moons(dir.path(), &[]);
    // Sizes and paths stored in the model's configuration are not used by `eval`: a huge sample
    // count aborted the process with a failed allocation, a stored data.dir re-rooted paths.
    edit_metadata(&model, "config", |c| {
        c["data"]["samples"] = serde_json::json!(100_000_000_000_u64);
        c["data"]["dir"] = serde_json::json!("/nonexistent-root");
    });
    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", "moons", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(last_json(&o)["samples"], 400, "the default moons, not the stored count");
    // A stored scaler that does not fit the model is an error naming the file.
    edit_metadata(&model, "scaler", |s| s["offset"] = serde_json::json!([0.0, 0.0, 0.0]));
    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", "moons"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 offsets and 2 scales for a model of 2 inputs"), "{}", stderr(&o));
    // A crafted step counter in a checkpoint is refused before training, not wrapped.
    edit_metadata(&ckpt, "state", |s| s["optimizer_steps"] = serde_json::json!(u64::MAX));
    let o = nabla(&["train", "--resume", ckpt.to_str().unwrap(), "--epochs", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("optimizer_steps") && stderr(&o).contains("beyond"), "{}", stderr(&o));
    // A generated set of absurd size from a crafted checkpoint's configuration is refused too.
    edit_metadata(&ckpt, "state", |s| s["optimizer_steps"] = serde_json::json!(3));
    edit_metadata(&ckpt, "config", |c| c["data"]["samples"] = serde_json::json!(100_000_000_000_u64));
    let o = nabla(&["train", "--resume", ckpt.to_str().unwrap(), "--epochs", "4"]);
    assert!(matches!(o.status.code(), Some(1 | 2)), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 16777216 samples"), "{}", stderr(&o));
}

#[test]
fn outputs_never_overwrite_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ckpt) = train_moons(dir.path(), &[]);
    let input = write(dir.path(), "x.csv", "x1,x2\n0.9,0.8\n0.1,0.1\n");
    let before = std::fs::read(&input).unwrap();
    let (m, i) = (model.to_str().unwrap(), input.to_str().unwrap());
    for output in [i, m] {
        let o = nabla(&["predict", "--model", m, "--input", i, "--output", output]);
        assert_eq!(o.status.code(), Some(2), "--output {output}: {}", stderr(&o));
        assert!(stderr(&o).contains("writing it would destroy that file"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input CSV is intact");
    // --save over the checkpoint being resumed would replace it with a model file.
    let c = ckpt.to_str().unwrap();
    let ckpt_before = std::fs::read(&ckpt).unwrap();
    let o = nabla(&["train", "--resume", c, "--epochs", "4", "--save", c]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--save") && stderr(&o).contains("--resume"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&ckpt).unwrap(), ckpt_before);
    // Continuing to checkpoint into the resumed file is allowed.
    let o = nabla(&["train", "--resume", c, "--epochs", "4", "--checkpoint", c, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A plot over the CSV data trained on is refused.
    let data = write(dir.path(), "d.csv", "a,b,label\n0,0,0\n1,1,1\n0,1,1\n1,0,0\n");
    let spec = format!("csv:{}", data.display());
    let o = nabla(&["train", "--data", &spec, "--epochs", "1", "--plot", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--plot"), "{}", stderr(&o));
    // A plot is written atomically (rendered in memory): a PNG appears, nothing else.
    let png = dir.path().join("curves.png");
    let o = nabla(&["train", "--data", &spec, "--epochs", "2", "--plot", png.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

/// With `--dtype f64` the data and the scaler are f64 all the way: `nabla eval`'s loss equals an
/// independent f64 forward pass (the CSV's text parsed as f64, the stored scaler and weights) to
/// rounding. With the data held in f32 it differed by ~1e-8 relative.
#[test]
fn f64_runs_see_the_files_numbers_exactly() {
    use safetensors::tensor::SafeTensors;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("a,b,y\n");
    let rows: Vec<[f64; 3]> = (0..64)
        .map(|i| {
            let t = i as f64;
            [1000.0 + (t * 0.7).sin() * 0.123_456_789, (t * 1.3).cos() * 1e-3 + 0.1, (t * 0.37).sin()]
        })
        .collect();
    for r in &rows {
        csv.push_str(&format!("{},{},{}\n", r[0], r[1], r[2]));
    }
    let data = write(dir.path(), "f64.csv", &csv);
    let model = dir.path().join("m.safetensors");
    let spec = format!("csv:{}", data.display());
    let common = ["--target", "y", "--loss", "mse", "--layers", "2,5,1", "--activation", "tanh"];
    let mut args = vec!["train", "--data", &spec, "--dtype", "f64", "--epochs", "3", "--scale", "standard"];
    args.extend(common);
    args.extend(["--save", model.to_str().unwrap(), "--json"]);
    let o = nabla(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nabla(&["eval", "--model", model.to_str().unwrap(), "--data", &spec, "--target", "y", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = last_json(&o);
    assert_eq!(e["dtype"], "f64");
    let got = e["final_loss"].as_f64().unwrap();

    let bytes = std::fs::read(&model).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensor = |name: &str| -> Vec<f64> {
        st.tensor(name).unwrap().data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
    };
    let (w1, b1, w2, b2) =
        (tensor("layers.0.weight"), tensor("layers.0.bias"), tensor("layers.1.weight"), tensor("layers.1.bias"));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let scaler: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["scaler"]).unwrap();
    let (offset, scale) = (&scaler["offset"], &scaler["scale"]);
    let mut loss = 0.0;
    for r in &rows {
        let x: Vec<f64> = (0..2).map(|j| (r[j] - offset[j].as_f64().unwrap()) * scale[j].as_f64().unwrap()).collect();
        let h: Vec<f64> = (0..5).map(|u| (w1[2 * u] * x[0] + w1[2 * u + 1] * x[1] + b1[u]).tanh()).collect();
        let out = (0..5).map(|u| w2[u] * h[u]).sum::<f64>() + b2[0];
        loss += (out - r[2]).powi(2);
    }
    let want = loss / rows.len() as f64;
    assert!(((got - want) / want).abs() < 1e-13, "eval {got} vs an f64 forward pass {want}");
}

/// `check-backend`: a table and, with `--json`, one object with every row on the last line;
/// a backend nabla cannot open is exit 2 with the accepted names.
#[test]
fn check_backend_reports_every_row_and_refuses_an_unknown_backend() {
    let o = nabla(&["check-backend", "openblas", "--dtype", "f64", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.starts_with("op "), "{table}");
    assert!(table.contains("openblas: ") && table.contains("the backend conforms"), "{table}");
    let j = last_json(&o);
    assert_eq!(j["passed"], true);
    let rows = j["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["dtype"] == "f64" && r["result"] == "pass"), "{j}");
    let gemm_nt = rows.iter().find(|r| r["op"] == "gemm" && r["variant"] == "NT").unwrap();
    assert!(gemm_nt["cases"].as_u64().unwrap() >= 100, "{gemm_nt}");
    assert!(gemm_nt["max_error"].as_f64().unwrap() <= 1e-10, "{gemm_nt}");
    for op in ["activate_grad", "loss grad", "update w", "training_step", "dropout_mask", "empty: gemm"] {
        assert!(rows.iter().any(|r| r["op"] == op), "no {op} row");
    }
    let o = nabla(&["check-backend", "abacus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("abacus"), "{}", stderr(&o));
}

/// `compare`: the same seeded run on the reference and OpenBLAS backends agrees in f64 (losses
/// per epoch, final weights, every op of the first step), `--plot` draws the overlay, and a
/// train-only flag or a single backend is refused.
#[test]
fn compare_reports_how_far_each_backend_is_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("losses.png");
    let plot_s = plot.to_str().unwrap();
    let o = nabla(&[
        "compare",
        "--backends",
        "reference,openblas",
        "--epochs",
        "4",
        "--dtype",
        "f64",
        "--json",
        "--plot",
        plot_s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = last_json(&o);
    assert_eq!(j["agree"], true, "{j}");
    let backends = j["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["losses"].as_array().unwrap().len(), 4);
    let b = &backends[1];
    assert_eq!(b["backend"], "openblas");
    assert!(b["loss_rel_diff"].as_array().unwrap().iter().all(|d| d.as_f64().unwrap() < 1e-12), "{b}");
    assert!(b["weights_max_rel_diff"].as_f64().unwrap() < 1e-10, "{b}");
    assert!(b["first_step_diverges_at"].is_null(), "{b}");
    assert!(b["first_step_max_error"].as_f64().unwrap() <= 1e-10, "{b}");
    assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"));

    let o = nabla(&["compare", "--backends", "reference,openblas", "--epochs", "2", "--markdown"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(md.contains("| epoch | reference loss | openblas loss | rel. diff |"), "{md}");
    assert!(md.contains("- openblas: first step"), "{md}");

    let o = nabla(&["compare", "--backends", "reference,openblas", "--save", "m.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--save"), "{}", stderr(&o));
    let o = nabla(&["compare", "--backends", "reference"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at least two"), "{}", stderr(&o));
}

/// Where a CUDA device is (and this binary has the backend), the kit passes on it and a run
/// agrees with the reference in f64; elsewhere the test says it is skipped.
#[test]
fn check_backend_and_compare_on_cuda_where_present() {
    let o = nabla(&["backends", "--json"]);
    let usable = last_json(&o)["backends"].as_array().is_some_and(|b| {
        b.iter().any(|b| b["backend"].as_str().is_some_and(|n| n.starts_with("cuda")) && b["usable"] == true)
    });
    if !usable {
        eprintln!("skipped: no usable CUDA backend in this build or on this machine");
        return;
    }
    let o = nabla(&["check-backend", "cuda", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(last_json(&o)["passed"], true);
    let o = nabla(&["compare", "--backends", "reference,cuda", "--epochs", "3", "--dtype", "f64", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(last_json(&o)["agree"], true);
}
