//! What the CPU backend runs on: the vector instruction set, the measured FMA peak, OpenBLAS's
//! build and core, and a warning when OpenBLAS's kernels are narrower than the CPU's registers.

use serde::Serialize;

/// The CPU and OpenBLAS as `nabla backends` and `nabla bench` report them.
#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    /// The widest vector instruction set nabla's kernels use here (`NABLA_SIMD` may cap it).
    pub isa: &'static str,
    /// The f32 FMA peak of one core at `isa`, GFLOP/s (a register-only FMA loop).
    pub fma_peak_gflops: f64,
    /// The same loop at every narrower instruction set, `(isa, GFLOP/s)`.
    pub fma_peak_by_isa: Vec<(&'static str, f64)>,
    /// `openblas_get_config()`.
    pub openblas_config: String,
    /// `openblas_get_corename()`, and the instruction set of that core's kernels where known.
    pub openblas_core: String,
    pub openblas_core_isa: Option<&'static str>,
    /// Set when OpenBLAS's kernels are narrower than the CPU's registers.
    pub warning: Option<String>,
}

/// The report, or `None` in a build without the OpenBLAS backend.
#[cfg(feature = "openblas")]
pub fn report() -> Option<CpuReport> {
    use nabla::openblas::report as r;
    use nabla::openblas::{Level, level};
    let levels = [Level::Generic, Level::Avx2, Level::Avx512];
    let core = r::openblas_core();
    Some(CpuReport {
        isa: r::level_name(level()),
        fma_peak_gflops: r::fma_peak(level()),
        fma_peak_by_isa: levels
            .into_iter()
            .filter(|&l| l <= level())
            .map(|l| (r::level_name(l), r::fma_peak(l)))
            .collect(),
        openblas_config: r::openblas_config(),
        openblas_core_isa: r::core_level(&core).map(r::level_name),
        openblas_core: core,
        warning: r::narrower_kernels(),
    })
}

/// The report, or `None` in a build without the OpenBLAS backend.
#[cfg(not(feature = "openblas"))]
pub fn report() -> Option<CpuReport> {
    None
}

impl CpuReport {
    /// Two lines for a terminal.
    pub fn lines(&self) -> String {
        let others: Vec<String> =
            self.fma_peak_by_isa.iter().rev().skip(1).map(|(isa, g)| format!("{isa} {g:.0}")).collect();
        format!(
            "CPU: {} kernels, f32 FMA peak {:.0} GFLOP/s per core{}\nOpenBLAS: {} (core {}, {})",
            self.isa,
            self.fma_peak_gflops,
            if others.is_empty() { String::new() } else { format!(" ({})", others.join(", ")) },
            self.openblas_config,
            self.openblas_core,
            self.openblas_core_isa.unwrap_or("kernels of unknown width"),
        )
    }
}

/// Prints the narrow-kernel warning on stderr, once per process, when the OpenBLAS backend is
/// about to be used (`backend` names it). The FMA peaks are measured only when there is a warning
/// to give.
pub fn warn_once_if_narrow(backend: &str) {
    #[cfg(feature = "openblas")]
    if backend == "openblas" {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if let Some(w) = nabla::openblas::report::narrower_kernels() {
                eprintln!("warning: {w}");
            }
        });
    }
    #[cfg(not(feature = "openblas"))]
    let _ = backend; // only the OpenBLAS backend has kernels to warn about
}
