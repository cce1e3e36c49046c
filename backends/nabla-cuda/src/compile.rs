//! Compiling `kernels.cu` with NVRTC: the source with the launch constants defined in front, the
//! options, CUBIN for the device's `sm_XY` when this NVRTC knows it (else PTX for `compute_XY`,
//! which the driver compiles), and the versions to report when the driver refuses the result.
//!
//! Supported compute capabilities: 7.5 and newer (Turing onwards) with CUDA 13's NVRTC, which
//! no longer targets 7.0; kernels.cu needs nothing beyond what 7.5 has (warp shuffles, double
//! precision `exp`/`erf`). CI compiles it for compute_80 and compute_90 (`tests::nvrtc_*`).

use std::sync::Mutex;

use cudarc::nvrtc::Ptx;
use nabla_core::{Error, Result};

/// The kernels' CUDA C source (without the launch constants).
pub const KERNELS: &str = include_str!("kernels.cu");

/// Threads per block of the element-wise and per-row kernels (grid-stride loops: any count works).
pub const THREADS: u32 = 256;
/// Threads of a `loss` / `loss_finish` block, which reduce in shared memory of this size by
/// halving (a power of two).
pub const REDUCE_THREADS: u32 = 256;
/// The most blocks `loss` runs on (their partial sums fill `2 · MAX_LOSS_BLOCKS` of scratch).
pub const MAX_LOSS_BLOCKS: usize = 1024;
/// The `(columns, row-strides)` block of `sum_rows` (a warp of consecutive columns).
pub const ROWS_BLOCK: (u32, u32) = (32, 8);
/// Rows one `sum_rows` block sums at least before the rows are split across more blocks.
pub const ROWS_PER_CHUNK: usize = 256;
/// The warp width the row-wise softmax kernels shuffle across.
pub const WARP: u32 = 32;
/// Elements of each element type's scratch buffer (the blocks' partial sums of `loss` and
/// `sum_rows`): 1 Mi, 4 MiB in f32.
pub const SCRATCH: usize = 1 << 20;

const _: () = assert!(REDUCE_THREADS.is_power_of_two() && THREADS.is_multiple_of(WARP) && ROWS_BLOCK.0 == WARP);
const _: () = assert!(2 * MAX_LOSS_BLOCKS <= SCRATCH);

/// kernels.cu with the launch constants and the op codes defined first (the codes generated
/// from nabla_core's enums), so that the kernels, the launches and the Rust codes cannot disagree.
pub fn source() -> String {
    format!(
        "#define NABLA_REDUCE_THREADS {REDUCE_THREADS}\n#define NABLA_ROWS_X {}\n#define NABLA_ROWS_Y {}\n\
         #define NABLA_WARP {WARP}\n{}{KERNELS}",
        ROWS_BLOCK.0,
        ROWS_BLOCK.1,
        nabla_core::codes::c_defines("")
    )
}

/// Whether NVRTC may contract `a·b + c` into fused multiply-adds (`--fmad`): on by default — it
/// is faster, and cuBLAS's GEMMs fuse anyway — so results differ from the reference backend in the
/// last bits, within the conformance tolerances (f32 1e-4, f64 1e-10 relative).
/// `NABLA_CUDA_FMAD=false` turns it off, for comparisons closer to the CPU backends.
pub fn fmad() -> bool {
    std::env::var("NABLA_CUDA_FMAD").map_or(true, |v| v != "false" && v != "0")
}

/// NVRTC's options: the architecture, exact math (no `--use_fast_math`), `--fmad` as [`fmad`] says.
pub fn options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), format!("--fmad={}", fmad())]
}

fn nvrtc_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::backend("cuda", format!("{what}: {e:?}"))
}

/// Compiles the kernels for `arch` with [`options`]: PTX text for a virtual architecture
/// (`compute_90`), CUBIN for a real one (`sm_90`). A compile error is an error carrying NVRTC's
/// log, except that a CUBIN this NVRTC cannot make (an architecture it does not know) is `None`.
fn compile(arch: &str, cubin: bool) -> Result<Option<Vec<u8>>> {
    use cudarc::nvrtc::{result, sys};
    let src = std::ffi::CString::new(source()).map_err(|e| nvrtc_error("the kernel source", e))?;
    let prog = result::create_program(&src, None).map_err(|e| nvrtc_error("creating the NVRTC program", e))?;
    let opts = options(arch);
    // SAFETY: `prog` is a live program, destroyed once below; NVRTC fills buffers of the sizes it
    // reports.
    let out = unsafe {
        match result::compile_program(prog, &opts) {
            Err(_) if cubin => Ok(None),
            Err(e) => {
                let log = result::get_program_log(prog).unwrap_or_default();
                let log = std::ffi::CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned();
                Err(nvrtc_error(&format!("compiling the kernels with NVRTC for {arch} failed ({opts:?}):\n{log}"), e))
            }
            Ok(()) if cubin => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| nvrtc_error("the CUBIN's size", e))?;
                let mut bytes = vec![0u8; size];
                sys::nvrtcGetCUBIN(prog, bytes.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| nvrtc_error("the CUBIN", e))?;
                Ok((size > 0).then_some(bytes))
            }
            Ok(()) => {
                let ptx = result::get_ptx(prog).map_err(|e| nvrtc_error("the PTX", e))?;
                Ok(Some(std::ffi::CStr::from_ptr(ptx.as_ptr()).to_bytes().to_vec()))
            }
        }
    };
    // SAFETY: destroyed once, not used after.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// PTX of the kernels for virtual architecture `arch` (`compute_90`).
pub fn ptx(arch: &str) -> Result<String> {
    let bytes = compile(arch, false)?.ok_or_else(|| nvrtc_error("compiling the kernels", "no PTX"))?;
    String::from_utf8(bytes).map_err(|e| nvrtc_error("the PTX", e))
}

/// CUBIN of the kernels for real architecture `arch` (`sm_90`), or `None` when this NVRTC does
/// not know the architecture (the caller then loads PTX).
pub fn cubin(arch: &str) -> Result<Option<Vec<u8>>> {
    compile(arch, true)
}

/// A compiled image: the compute capability, the bytes, and whether they are CUBIN (else PTX).
type Compiled = ((i32, i32), Vec<u8>, bool);

/// The kernels for compute capability `major.minor`: CUBIN for `sm_XY` when NVRTC knows it, else
/// PTX for `compute_XY`. Compiled once per process and architecture (cached for later backends).
pub fn for_device(major: i32, minor: i32) -> Result<Ptx> {
    static CACHE: Mutex<Vec<Compiled>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().map_err(|_| Error::backend("cuda", "the kernel cache was poisoned by a panic"))?;
    let image = |bytes: &Vec<u8>, binary: bool| {
        if binary {
            Ptx::from_binary(bytes.clone())
        } else {
            Ptx::from_src(String::from_utf8_lossy(bytes).into_owned())
        }
    };
    if let Some((_, bytes, binary)) = cache.iter().find(|(arch, ..)| *arch == (major, minor)) {
        return Ok(image(bytes, *binary));
    }
    let (bytes, binary) = match cubin(&format!("sm_{major}{minor}"))? {
        Some(bin) => (bin, true),
        None => (ptx(&format!("compute_{major}{minor}"))?.into_bytes(), false),
    };
    let out = image(&bytes, binary);
    cache.push(((major, minor), bytes, binary));
    Ok(out)
}

/// `(major, minor)` of the NVRTC library loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters.
    let ok = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (ok == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// The CUDA version the driver supports, as `(major, minor)`.
pub fn driver_version() -> Option<(i32, i32)> {
    let mut v = 0;
    // SAFETY: a plain out-parameter.
    let ok = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (ok == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then_some((v / 1000, (v % 1000) / 10))
}

/// What to say when the driver refuses the compiled kernels (typically PTX of a newer NVRTC on
/// an older driver: `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`).
pub fn load_failure(e: impl std::fmt::Debug) -> Error {
    let show = |v: Option<(i32, i32)>| v.map_or("unknown".to_string(), |(a, b)| format!("{a}.{b}"));
    Error::backend(
        "cuda",
        format!(
            "the driver refused the kernels ({e:?}); the driver supports CUDA {} and NVRTC is {}: install a driver \
             for CUDA {} or newer, or an NVRTC no newer than the driver (libnvrtc on LD_LIBRARY_PATH)",
            show(driver_version()),
            show(nvrtc_version()),
            show(nvrtc_version())
        ),
    )
}
