//! Data-parallel training under `mpirun` (feature `mpi`): P ranks train exactly what one process
//! trains, every rank holds the same weights after every step, and faults end the job cleanly.
//!
//! Each case runs the `nabla` binary as separate processes (MPI initialises once per process);
//! as root, OpenMPI needs `OMPI_ALLOW_RUN_AS_ROOT`, which these tests set for their children.

#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NABLA: &str = env!("CARGO_BIN_EXE_nabla");

fn mpirun(ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &ranks.to_string(), "--oversubscribe", "--bind-to", "none"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    c
}

/// `nabla ARGS` on `ranks` ranks (1: a plain process, no launcher).
fn run(ranks: usize, args: &[&str]) -> Output {
    let mut c = if ranks == 1 { Command::new(NABLA) } else { mpirun(ranks) };
    if ranks > 1 {
        c.arg(NABLA);
    }
    c.args(args).output().expect("runs nabla (is OpenMPI's mpirun installed?)")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every tensor of a model file, as f64, in name order.
fn weights(path: &Path) -> Vec<f64> {
    use safetensors::tensor::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            let t = st.tensor(n).unwrap();
            match t.dtype() {
                Dtype::F64 => {
                    t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>()
                }
                _ => t.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap()))).collect(),
            }
        })
        .collect()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-30);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

/// 97 samples per arm × 3 = 291 rows, batches of 32: 10 steps an epoch, the last of 3 rows (one
/// rank's shard empty at P = 4); 10 epochs = 100 steps across epoch boundaries.
fn flags<'a>(opt: &'a str, dropout: &'a str, dtype: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--dataset",
        "spirals",
        "--samples",
        "97",
        "--layers",
        "2,24,24,3",
        "--activation",
        "tanh",
        "--optimizer",
        opt,
        "--lr",
        "0.05",
        "--epochs",
        epochs,
        "--batch-size",
        "32",
        "--seed",
        "11",
        "--dropout",
        dropout,
        "--dtype",
        dtype,
        "--backend",
        "reference",
        "--json",
    ]
}

fn train_to(dir: &Path, name: &str, ranks: usize, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut a = args.to_vec();
    a.extend(["--save", path.to_str().unwrap(), "--check-consistency"]);
    let o = run(ranks, &a);
    assert!(o.status.success(), "{ranks} ranks {args:?}: {}", stderr(&o));
    path
}

#[test]
fn p_ranks_train_what_one_process_trains() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str, f64); 7] = [
        ("sgd", "0", "f64", 1e-12),
        ("momentum", "0", "f64", 1e-12),
        ("adam", "0", "f64", 1e-12),
        ("sgd", "0.2", "f64", 1e-12),
        ("momentum", "0.2", "f64", 1e-12),
        ("adam", "0.2", "f64", 1e-12),
        ("adam", "0.2", "f32", 1e-5),
    ];
    for (opt, dropout, dtype, tol) in cases {
        let args = flags(opt, dropout, dtype, "10");
        let one = weights(&train_to(dir.path(), "one.safetensors", 1, &args));
        for ranks in [2, 3, 4] {
            let p = weights(&train_to(dir.path(), &format!("p{ranks}.safetensors"), ranks, &args));
            let err = max_rel(&one, &p);
            eprintln!("{opt} dropout {dropout} {dtype}, {ranks} ranks: max relative weight difference {err:.2e}");
            assert!(err <= tol, "{opt} dropout {dropout} {dtype} on {ranks} ranks: {err:.3e} > {tol:e}");
        }
    }
}

/// With a hidden layer of at least 1 MiB of weights, that layer's gradient is summed where
/// backward wrote it (swapped out of the network and back, no copy) rather than through the
/// bucket: the same equivalence holds, on OpenBLAS, every rank's weights identical after every
/// step (one rank's shard empty at P = 4).
///
/// f32 trains with momentum, not Adam: Adam divides each gradient by its own running size, so
/// on elements whose gradient is near zero it turns rounding into steps of O(lr). On this
/// network one process alone, with OpenBLAS's GEMM against nabla's own (`--gemm native`), ends
/// 2.2e-5 apart after 100 Adam steps at lr 0.001 (6.5e-6 at 0.0003) on an AVX2 Zen 3, above the
/// 1e-5 asked of P ranks; with momentum at lr 0.05 the two providers end 2.4e-7 apart, so 1e-5
/// tests the reduction, not the CPU's rounding. (Adam in f32 is checked on the small network
/// above; scaling bugs are also plainer under momentum, which Adam's normalisation would hide.)
#[test]
fn a_layer_summed_in_place_trains_what_one_process_trains() {
    let dir = tempfile::tempdir().unwrap();
    // Adam at a smaller step: at 0.05 it makes this wider network chaotic, and rounding alone
    // (one process's sums against P ranks') grows to O(1) over 100 steps.
    let cases =
        [("f64", "adam", "0.001", "2,16,384,384,3", 1e-12), ("f32", "momentum", "0.05", "2,16,512,512,3", 1e-5)];
    for (dtype, optimizer, lr, layers, tol) in cases {
        let mut args = flags(optimizer, "0.2", dtype, "10");
        let swap = |a| match a {
            "2,24,24,3" => layers,
            "reference" => "openblas",
            "0.05" => lr,
            a => a,
        };
        args = args.into_iter().map(swap).collect();
        let one = weights(&train_to(dir.path(), "one.safetensors", 1, &args));
        for ranks in [2, 4] {
            let p = weights(&train_to(dir.path(), &format!("p{ranks}.safetensors"), ranks, &args));
            let err = max_rel(&one, &p);
            eprintln!("{dtype} {layers}, {ranks} ranks: max relative weight difference {err:.2e}");
            assert!(err <= tol, "{dtype} {layers} on {ranks} ranks: {err:.3e} > {tol:e}");
        }
    }
}

#[test]
fn a_checkpoint_of_two_ranks_resumes_on_one_and_on_four() {
    let dir = tempfile::tempdir().unwrap();
    let straight = weights(&train_to(dir.path(), "straight.safetensors", 1, &flags("adam", "0.2", "f64", "8")));
    let ckpt = dir.path().join("c.safetensors");
    let mut first = flags("adam", "0.2", "f64", "4");
    first.extend(["--checkpoint", ckpt.to_str().unwrap()]);
    let o = run(2, &first);
    assert!(o.status.success(), "{}", stderr(&o));
    for ranks in [1, 4] {
        let resumed = dir.path().join(format!("r{ranks}.ckpt.safetensors"));
        std::fs::copy(&ckpt, &resumed).unwrap();
        let model = dir.path().join(format!("r{ranks}.safetensors"));
        let args = [
            "train",
            "--resume",
            resumed.to_str().unwrap(),
            "--epochs",
            "8",
            "--save",
            model.to_str().unwrap(),
            "--json",
        ];
        let o = run(ranks, &args);
        assert!(o.status.success(), "resume on {ranks}: {}", stderr(&o));
        let err = max_rel(&straight, &weights(&model));
        assert!(err <= 1e-12, "a 2-rank checkpoint resumed on {ranks} ranks: {err:.3e}");
    }
}

#[test]
fn rank_zero_alone_writes_and_reports_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let mut args = flags("sgd", "0", "f32", "2");
    args.extend(["--save", model.to_str().unwrap()]);
    let o = run(3, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "one JSON line, from rank 0 only: {out}");
    let j: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(j["world_size"], 3);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["m.safetensors"], "one file, no temporary left");
}

#[test]
fn bad_starts_are_errors_on_every_rank() {
    // A global batch smaller than the world.
    let mut args = flags("sgd", "0", "f32", "1");
    let at = args.iter().position(|a| *a == "--batch-size").unwrap();
    args[at + 1] = "2";
    let o = run(3, &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("smaller than the 3 ranks"), "{}", stderr(&o));
    // Ranks started with different flags (MPMD: rank 1 gets another learning rate).
    let base = flags("sgd", "0", "f32", "1");
    let other: Vec<&str> = base.iter().map(|a| if *a == "0.05" { "0.07" } else { a }).collect();
    let mut c = mpirun(1);
    c.arg(NABLA).args(&base).arg(":").args(["-n", "1", NABLA]).args(&other);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("rank 1 has another configuration"), "{}", stderr(&o));
    // Ranks given different data (same size, one value changed) are refused before a step.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, tweak: f64| {
        let mut csv = String::from("a,b,label\n");
        for i in 0..40 {
            csv.push_str(&format!("{},{},{}\n", i as f64 * 0.1 + if i == 7 { tweak } else { 0.0 }, 0.5, i % 2));
        }
        let p = dir.path().join(name);
        std::fs::write(&p, csv).unwrap();
        format!("csv:{}", p.display())
    };
    let (a, b) = (write("a.csv", 0.0), write("b.csv", 1e-9));
    let args = |spec: &str| -> Vec<String> {
        ["train", "--data", spec, "--layers", "2,4,2", "--epochs", "1"].iter().map(|s| s.to_string()).collect()
    };
    let mut c = mpirun(1);
    c.arg(NABLA).args(args(&a)).arg(":").args(["-n", "1", NABLA]).args(args(&b));
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("another training data"), "{}", stderr(&o));
}

#[test]
fn a_non_finite_loss_on_one_rank_stops_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("a,b,label\n");
    for i in 0..64 {
        let v = if i == 40 { 3e38 } else { (i % 7) as f64 * 0.1 };
        csv.push_str(&format!("{v},{},{}\n", (i % 5) as f64 * 0.2, i % 2));
    }
    let data = dir.path().join("d.csv");
    std::fs::write(&data, csv).unwrap();
    let spec = format!("csv:{}", data.display());
    let args = [
        "train",
        "--data",
        &spec,
        "--scale",
        "none",
        "--no-shuffle",
        "--layers",
        "2,4,2",
        "--batch-size",
        "64",
        "--epochs",
        "2",
        "--lr",
        "1",
    ];
    let started = Instant::now();
    let o = run(2, &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("non-finite"), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(60), "ended promptly");
}

#[test]
fn a_killed_rank_ends_the_job() {
    let mut args = flags("sgd", "0", "f32", "100000");
    args.retain(|a| *a != "--json");
    let mut child = mpirun(2).arg(NABLA).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Wait for the ranks to start, then kill one of them.
    let started = Instant::now();
    let rank = loop {
        let out = Command::new("pgrep").args(["-P", &child.id().to_string(), "-f", NABLA]).output().unwrap();
        if let Some(pid) = String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string) {
            break pid;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the ranks did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    Command::new("kill").args(["-9", &rank]).status().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the job did not end within 30 s of a rank's death");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    eprintln!("the job ended {:.1} s after a rank was killed", killed.elapsed().as_secs_f64());
}
