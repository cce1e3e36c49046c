//! `nabla bench`: the peers' training workloads and a GEMM sweep on every backend asked for,
//! with the fractions that say how close each comes to what its own GEMMs allow.
//!
//! For each backend × thread count × workload: warm-up steps, then `--reps` timed repetitions of
//! the workload's step count (fewer when a step is slow, to stay near `--max-seconds`); the
//! median, minimum and maximum step time; samples/s and steps/s; GFLOP/s of the step's GEMMs;
//! **% of the GEMM bound** (the time the backend's own GEMMs for those shapes take alone, over
//! the step time), **% of the measured GEMM peak** (the best GFLOP/s of the square sweep) and, on
//! the CPU, **% of the FMA peak** (the hardware's: a register-only FMA loop at the CPU's widest
//! vector instruction set, times the threads). The CPU report (instruction set, FMA peaks,
//! OpenBLAS build and core) comes first, and each OpenBLAS run ends with the GEMM provider every
//! shape took.

use std::process::ExitCode;

use nabla::bench::{GemmOperands, Prepared, Workload, summarize};
use nabla::{AnyBackend, Backend, BackendOptions, Error, Gemm, Result, Trans};
use serde::Serialize;
use serde_json::json;

use crate::args::BenchArgs;
use crate::job::Job;
use crate::plot::Line;

/// One measured line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub backend: String,
    pub workload: String,
    pub threads: usize,
    pub batch: usize,
    pub steps: usize,
    pub samples_per_sec: f64,
    pub steps_per_sec: f64,
    pub gflops: f64,
    /// The GEMM bound and the peak; `None` (JSON `null`) with `--only-steps`, which skips them.
    pub gemm_bound_ms: Option<f64>,
    pub gemm_bound_fraction: Option<f64>,
    pub peak_gflops: Option<f64>,
    pub peak_fraction: Option<f64>,
    /// The CPU's f32 FMA peak for the threads used and the step's fraction of it (CPU backends).
    pub fma_peak_gflops: Option<f64>,
    pub fma_peak_fraction: Option<f64>,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Resident memory before the workload was set up and the process's peak after, in MiB.
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    /// What the model needs (parameters, gradients, one batch's values), in MiB.
    pub model_mib: f64,
    /// Data-parallel ranks (`mpirun -n P nabla bench`); `samples_per_sec` counts all of them.
    pub world_size: usize,
    /// Milliseconds per step spent in the gradient all-reduce that backward did not hide (0
    /// alone).
    pub allreduce_ms: f64,
    /// Whether each layer's all-reduce overlapped backward (`false` with `--no-overlap`).
    pub overlap: bool,
}

/// Median/min/max seconds per call of `run(count)` (which does `count` calls and returns the
/// seconds), after `warmup` untimed calls, choosing `count` so that one repetition takes about
/// `budget` seconds at most (and at least one call).
fn time_per_call(
    mut run: impl FnMut(usize) -> Result<f64>,
    wanted: usize,
    warmup: usize,
    reps: usize,
    budget: f64,
) -> Result<(usize, f64, f64, f64)> {
    let probe = run(1)?;
    if warmup > 1 {
        run(warmup - 1)?;
    }
    let count = (wanted as f64).min((budget / probe.max(1e-9)).floor()).max(1.0) as usize;
    let mut times: Vec<f64> = (0..reps.max(1)).map(|_| run(count).map(|s| s / count as f64)).collect::<Result<_>>()?;
    let (median, min, max) = summarize(&mut times);
    Ok((count, median, min, max))
}

/// The square sizes of the GEMM sweep.
const SQUARES: [usize; 6] = [64, 128, 256, 512, 1024, 2048];

/// Seconds per product of `shape` on `backend` (median of `reps`).
fn gemm_seconds(backend: &AnyBackend, shape: Gemm, reps: usize, budget: f64) -> Result<f64> {
    let mut ops = GemmOperands::<f32, AnyBackend>::new(backend, shape)?;
    let wanted = (2e9 / shape.flops().max(1.0)).clamp(3.0, 2000.0) as usize;
    Ok(time_per_call(|n| ops.time(backend, n), wanted, 2, reps, budget)?.1)
}

fn tag(t: Trans) -> &'static str {
    if t == Trans::Yes { "T" } else { "N" }
}

/// Runs the benchmark for one opened backend.
#[allow(clippy::too_many_arguments)]
fn bench_backend(
    backend: &AnyBackend,
    label: &str,
    threads: usize,
    args: &BenchArgs,
    workloads: &[Workload],
    job: &Job,
    out: &mut Vec<BenchResult>,
) -> Result<()> {
    let budget = args.max_seconds;
    let fma_peak = cpu_peak(backend, threads);
    // The peak: the best square GEMM the backend does (the reference backend stops at 256).
    let reference = label == "reference";
    let mut peak = 0.0_f64;
    let mut sweep = Vec::new();
    for &s in SQUARES.iter().filter(|&&s| !args.only_steps && (!reference || s <= 256)) {
        let shape = Gemm { ta: Trans::No, tb: Trans::No, m: s, n: s, k: s };
        let secs = gemm_seconds(backend, shape, args.reps, budget)?;
        peak = peak.max(shape.flops() / secs / 1e9);
        sweep.push((format!("gemm-{s}"), shape, secs));
    }
    for w in workloads {
        if reference && w.flops_per_step() > 2e9 && !args.reference_wide {
            eprintln!(
                "skipping reference × {} (a naive {:.0}-GFLOP step; --reference-wide runs it)",
                w.name,
                w.flops_per_step() / 1e9
            );
            continue;
        }
        let gemms = if args.only_steps { Vec::new() } else { w.gemms() };
        let mut bound = 0.0;
        let rss_before = nabla::bench::resident_memory().map_or(0, |m| m.0);
        for g in &gemms {
            let secs = gemm_seconds(backend, *g, args.reps, budget / gemms.len() as f64)?;
            bound += secs;
            if args.gemm_sweep {
                sweep.push((format!("gemm-{}-{}x{}x{}-{}{}", w.alias, g.m, g.n, g.k, tag(g.ta), tag(g.tb)), *g, secs));
            }
        }
        let mut run = Prepared::<f32, AnyBackend>::sharded(backend.clone(), w, job.collective())?;
        run.set_overlap(!args.no_overlap);
        let wanted = ((w.steps as f64) * args.steps_scale).ceil().max(1.0) as usize;
        let warmup = ((w.warmup as f64) * args.steps_scale).ceil().max(1.0) as usize;
        // Ranks step in lockstep: each runs the wanted count (a budget measured on one rank's
        // clock could give the ranks different counts).
        let step_budget = if job.size() > 1 { f64::INFINITY } else { budget };
        let (steps, median, min, max) = time_per_call(|n| run.time(n), wanted, warmup, args.reps, step_budget)?;
        let (reductions, reduce_seconds) = run.reductions();
        let gflops = w.flops_per_step() / median / 1e9;
        let rss_peak = nabla::bench::resident_memory().map_or(0, |m| m.1);
        let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
        out.push(BenchResult {
            backend: label.into(),
            workload: w.name.clone(),
            threads,
            batch: w.batch,
            steps,
            samples_per_sec: w.batch as f64 / median,
            steps_per_sec: 1.0 / median,
            gflops,
            gemm_bound_ms: measured(bound).map(|b| b * 1e3),
            gemm_bound_fraction: measured(bound).map(|b| b / median),
            peak_gflops: measured(peak),
            peak_fraction: measured(peak).map(|p| gflops / p),
            fma_peak_gflops: fma_peak,
            fma_peak_fraction: fma_peak.map(|p| gflops / p),
            median_ms: median * 1e3,
            min_ms: min * 1e3,
            max_ms: max * 1e3,
            rss_before_mib: mib(rss_before),
            rss_peak_mib: mib(rss_peak),
            model_mib: mib(w.model_bytes(4, 0)),
            world_size: job.size(),
            allreduce_ms: if reductions > 0 { reduce_seconds / reductions as f64 * 1e3 } else { 0.0 },
            overlap: !args.no_overlap,
        });
        if !args.json && job.primary() {
            let r = out.last().ok_or_else(|| Error::invalid("bench", "no result"))?;
            eprintln!(
                "{label} {threads}T {}: {:.0} samples/s, {:.0} steps/s, {:.1} GFLOP/s, {} of the GEMM bound, {} of the GEMM peak, {} of the FMA peak",
                w.name,
                r.samples_per_sec,
                r.steps_per_sec,
                r.gflops,
                percent(r.gemm_bound_fraction),
                percent(r.peak_fraction),
                percent(r.fma_peak_fraction)
            );
        }
    }
    if args.gemm_sweep {
        for (name, shape, secs) in sweep {
            let gflops = shape.flops() / secs / 1e9;
            out.push(BenchResult {
                backend: label.into(),
                workload: name,
                threads,
                batch: shape.m,
                steps: 1,
                samples_per_sec: 0.0,
                steps_per_sec: 1.0 / secs,
                gflops,
                gemm_bound_ms: Some(secs * 1e3),
                gemm_bound_fraction: Some(1.0),
                peak_gflops: Some(peak),
                peak_fraction: Some(gflops / peak),
                fma_peak_gflops: fma_peak,
                fma_peak_fraction: fma_peak.map(|p| gflops / p),
                median_ms: secs * 1e3,
                min_ms: secs * 1e3,
                max_ms: secs * 1e3,
                rss_before_mib: 0.0,
                rss_peak_mib: 0.0,
                model_mib: 0.0,
                world_size: job.size(),
                allreduce_ms: 0.0,
                overlap: !args.no_overlap,
            });
        }
    }
    Ok(())
}

/// The CPU's FMA peak over `threads` cores for a CPU backend, `None` for the others.
fn cpu_peak(backend: &AnyBackend, threads: usize) -> Option<f64> {
    #[cfg(feature = "openblas")]
    if let AnyBackend::OpenBlas(_) = backend {
        return Some(nabla::openblas::report::fma_peak(nabla::openblas::level()) * threads as f64);
    }
    let _ = (backend, threads);
    None
}

/// The GEMM provider one shape took on an OpenBLAS backend.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeChoice {
    /// `m×n×k-` and the transposes, e.g. `512x4096x1024-NT`.
    pub shape: String,
    pub dtype: &'static str,
    pub beta_zero: bool,
    pub provider: &'static str,
    /// Milliseconds per product on each provider, when chosen by timing (`--gemm auto`).
    pub openblas_ms: Option<f64>,
    pub native_ms: Option<f64>,
}

impl std::fmt::Display for ShapeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |t: Option<f64>| t.map_or_else(|| "—".into(), |m| format!("{m:.3} ms"));
        let beta = if self.beta_zero { "β=0" } else { "β≠0" };
        write!(f, "{:<22} {} {beta} → {:<8}", self.shape, self.dtype, self.provider)?;
        write!(f, " (openblas {}, native {})", ms(self.openblas_ms), ms(self.native_ms))
    }
}

/// The GEMM provider each shape took on an OpenBLAS backend (empty for the others).
fn gemm_choices(backend: &AnyBackend) -> Vec<ShapeChoice> {
    #[cfg(feature = "openblas")]
    if let AnyBackend::OpenBlas(o) = backend {
        return o
            .gemm_choices()
            .iter()
            .map(|c| {
                let s = c.key.shape;
                ShapeChoice {
                    shape: format!("{}x{}x{}-{}{}", s.m, s.n, s.k, tag(s.ta), tag(s.tb)),
                    dtype: c.key.dtype.name(),
                    beta_zero: c.key.beta_zero,
                    provider: c.provider.name(),
                    openblas_ms: c.seconds.map(|t| t.0 * 1e3),
                    native_ms: c.seconds.map(|t| t.1 * 1e3),
                }
            })
            .collect();
    }
    let _ = backend;
    Vec::new()
}

/// `Some(x)` for a time or rate that was measured (`--only-steps` leaves them 0).
fn measured(x: f64) -> Option<f64> {
    (x > 0.0).then_some(x)
}

/// `93%`, or `—` where the figure was not measured.
fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "—".into(), |f| format!("{:.0}%", 100.0 * f))
}

/// The markdown table of the results.
pub fn markdown(results: &[BenchResult]) -> String {
    let mut s = String::from(
        "| backend | threads | workload | samples/s | steps/s | GFLOP/s | % GEMM bound | % GEMM peak | % FMA peak | median ms | min–max ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {:.4} | {:.4}–{:.4} |\n",
            r.backend,
            r.threads,
            r.workload,
            r.samples_per_sec,
            r.steps_per_sec,
            r.gflops,
            percent(r.gemm_bound_fraction),
            percent(r.peak_fraction),
            percent(r.fma_peak_fraction),
            r.median_ms,
            r.min_ms,
            r.max_ms
        ));
    }
    s
}

/// Throughput charts: one bar chart per workload (samples/s, steps/s for W2); for the scaling
/// study, GFLOP/s against width and against batch, per backend and thread count, beside the
/// GFLOP/s its GEMMs reach alone (thin) — where a thick line falls below its thin one, the
/// step has left the GEMM bound.
fn plot_results(path: &std::path::Path, results: &[BenchResult], workloads: &[Workload]) -> Result<()> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("bench");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("png");
    let file = |name: &str| path.with_file_name(format!("{stem}-{name}.{ext}"));
    for family in ["width", "batch"] {
        let mut series: Vec<Line> = Vec::new();
        let mut runs: Vec<(String, usize)> = results.iter().map(|r| (r.backend.clone(), r.threads)).collect();
        runs.dedup();
        for (backend, threads) in runs {
            let points: Vec<(f64, f64, f64)> = results
                .iter()
                .filter(|r| r.backend == backend && r.threads == threads)
                .filter_map(|r| {
                    let size = r.workload.strip_prefix(&format!("{family}-"))?.parse::<f64>().ok()?;
                    Some((size, r.gflops, r.gflops / r.gemm_bound_fraction?))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = format!("{backend} {threads}T");
            series.push(Line {
                label: label.clone(),
                thin: false,
                points: points.iter().map(|p| (p.0, p.1)).collect(),
            });
            series.push(Line {
                label: format!("{label}: GEMMs alone"),
                thin: true,
                points: points.iter().map(|p| (p.0, p.2)).collect(),
            });
        }
        if !series.is_empty() {
            let x = if family == "width" { "width W (1024-W-W-10, batch 128)" } else { "batch (1024-1024-1024-10)" };
            crate::plot::lines(&file(family), &format!("step GFLOP/s against {family}"), x, "GFLOP/s", &series)?;
        }
    }
    for w in workloads.iter().filter(|w| !w.name.starts_with("width-") && !w.name.starts_with("batch-")) {
        let bars: Vec<(String, f64)> = results
            .iter()
            .filter(|r| r.workload == w.name)
            .map(|r| {
                (
                    format!("{} {}T", r.backend, r.threads),
                    if w.steps_metric { r.steps_per_sec } else { r.samples_per_sec },
                )
            })
            .collect();
        let unit = if w.steps_metric { "steps/s" } else { "samples/s" };
        if !bars.is_empty() {
            crate::plot::bars(&file(&w.name), &format!("{} ({}): {unit}", w.name, w.alias), unit, &bars)?;
        }
    }
    Ok(())
}

/// `nabla bench`.
pub fn run(args: &BenchArgs, job: &Job) -> Result<ExitCode> {
    let scaling = [256, 512, 1024, 2048, 4096]
        .map(Workload::width)
        .into_iter()
        .chain([1, 4, 16, 64, 256, 1024].map(Workload::batch));
    let workloads: Vec<Workload> = if args.scaling {
        scaling.map(Ok).collect::<Result<_>>()?
    } else {
        args.workloads
            .split(',')
            .map(|n| {
                Workload::named(n.trim()).ok_or_else(|| {
                    let names: Vec<String> =
                        Workload::all().iter().map(|w| format!("{} ({})", w.name, w.alias)).collect();
                    Error::invalid("--workloads", format!("`{n}`; accepted: {}", names.join(", ")))
                })
            })
            .collect::<Result<_>>()?
    };
    let threads: Vec<usize> = args
        .threads
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|&t| t > 0)
                .ok_or_else(|| Error::invalid("--threads", format!("`{t}`; give counts ≥ 1, e.g. 1,2")))
        })
        .collect::<Result<_>>()?;
    if !(args.steps_scale > 0.0 && args.steps_scale.is_finite()) || args.reps == 0 {
        return Err(Error::invalid("--steps-scale / --reps", "give a positive scale and at least one repetition"));
    }
    let cpu = crate::cpu::report();
    if let Some(cpu) = cpu.as_ref().filter(|_| !args.json && job.primary()) {
        eprintln!("{}", cpu.lines());
    }
    let mut results = Vec::new();
    let mut choices = Vec::new();
    for name in args.backends.split(',').map(str::trim) {
        crate::cpu::warn_once_if_narrow(name);
        // Only the CPU backends have a thread count; the others run once.
        let counts: &[usize] = if name == "openblas" { &threads } else { &[1] };
        for &t in counts {
            let options = BackendOptions { threads: Some(t), tf32: args.tf32, gemm: args.gemm };
            let backend = AnyBackend::from_name(name, &options).map_err(|e| match e {
                Error::Invalid { detail, .. } => Error::invalid("--backends", detail),
                other => other,
            })?;
            let label = if name.starts_with("cuda") && args.tf32 { format!("{name}-tf32") } else { name.to_string() };
            if !args.json && job.primary() {
                eprintln!("benchmarking {} ({})", label, backend.describe());
            }
            bench_backend(&backend, &label, t, args, &workloads, job, &mut results)?;
            Backend::<f32>::synchronize(&backend)?;
            let shapes = gemm_choices(&backend);
            if !args.json && job.primary() && !shapes.is_empty() {
                eprintln!("{label} {t}T GEMM providers (--gemm {}):", args.gemm);
                for c in &shapes {
                    eprintln!("  {c}");
                }
            }
            if !shapes.is_empty() {
                choices.push(json!({ "backend": label, "threads": t, "shapes": shapes }));
            }
        }
    }
    if !job.primary() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.plot {
        plot_results(path, &results, &workloads)?;
    }
    if args.markdown {
        print!("{}", markdown(&results));
    }
    if args.json {
        println!("{}", json!({ "results": results, "cpu": cpu, "gemm_choices": choices }));
    } else if !args.markdown {
        print!("{}", markdown(&results));
    }
    Ok(ExitCode::SUCCESS)
}
