//! Plugin backends: the example plugins in Rust and C pass the conformance suite and train like
//! the reference; the header matches the Rust ABI; every misbehaving plugin is an error.

#![cfg(feature = "plugins")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use nabla::plugin::abi::{self, Op};
use nabla::plugin::{PluginBackend, capabilities};
use nabla::{
    Activation, Architecture, Backend, Element, Error, HostData, Init, Loss, Network, OptimizerConfig, Silent,
    TrainConfig, Trainer,
};

const C_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/backends/nabla-plugin-example/c/example_plugin.c");
const INCLUDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/nabla-plugin/include");

/// The C example plugin built with `-D{define}` (or none), through the `cc` crate's compiler.
fn c_plugin(define: Option<&str>) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"));
    let name = format!("libnabla_c_{}.so", define.unwrap_or("example").to_lowercase());
    let out = dir.path().join(&name);
    if out.exists() {
        return out;
    }
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .opt_level(2)
        .target(&target)
        .host(&target)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .get_compiler();
    let tmp = dir.path().join(format!("{name}.part"));
    let mut cmd = compiler.to_command();
    cmd.args(["-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", INCLUDE, C_SOURCE, "-o"])
        .arg(&tmp)
        .arg("-lm");
    if let Some(d) = define {
        cmd.arg(format!("-DNABLA_TEST_{d}"));
    }
    let status = cmd.status().expect("runs the C compiler");
    assert!(status.success(), "compiling the C plugin ({define:?}) failed");
    std::fs::rename(&tmp, &out).expect("rename");
    out
}

/// The Rust example plugin, built by cargo as a workspace member (`cargo test` builds it).
fn rust_plugin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let name = format!("{}nabla_plugin_example{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [profile_dir.join(&name), profile_dir.join("deps").join(&name)].into_iter().find(|p| p.exists())
}

fn load_rust() -> Option<PluginBackend> {
    match rust_plugin() {
        Some(p) => Some(PluginBackend::load(&p).expect("the Rust example plugin loads")),
        None => {
            common::skip("the Rust example plugin is not built (cargo build -p nabla-plugin-example)");
            None
        }
    }
}

conformance_suite!(plugin_c, Some(nabla::plugin::PluginBackend::load(&super::c_plugin(None)).unwrap()));
conformance_suite!(plugin_rust, super::load_rust());

fn spirals_accuracy<E: Element, B: Backend<E>>(backend: B) -> (f64, f64) {
    let data = nabla::data::synthetic::generate("spirals", Default::default(), 7).unwrap();
    let x: Vec<E> = data.features.iter().map(|&v| E::of(f64::from(v))).collect();
    let y: Vec<E> = data.target_matrix(3).unwrap().iter().map(|&v| E::of(f64::from(v))).collect();
    let arch = Architecture::new(&[2, 32, 32, 3], Activation::Relu, Loss::SoftmaxCe).unwrap();
    let net = Network::new(backend, arch, Init::Auto, 7).unwrap();
    let config = TrainConfig { epochs: 60, seed: 7, ..TrainConfig::default() };
    let mut t = Trainer::new(net, OptimizerConfig::named("adam", 0.01).unwrap(), config).unwrap();
    t.fit(HostData { x: &x, y: &y, rows: data.len() }, None, &mut Silent).unwrap();
    let s = t.net.evaluate(&x, &y).unwrap();
    (s.accuracy(), s.loss)
}

#[test]
fn example_plugins_train_the_spirals_like_the_reference() {
    let (acc, loss) = spirals_accuracy::<f64, _>(nabla::Reference);
    assert!(acc >= 0.9, "reference accuracy {acc}");
    let c = PluginBackend::load(&c_plugin(None)).unwrap();
    let (acc_c, loss_c) = spirals_accuracy::<f64, _>(c);
    assert_eq!(acc_c, acc, "C plugin");
    assert!((loss_c - loss).abs() < 1e-9, "C plugin loss {loss_c} vs reference {loss}");
    if let Some(r) = load_rust() {
        let (acc_r, loss_r) = spirals_accuracy::<f64, _>(r);
        assert_eq!(acc_r, acc, "Rust plugin");
        assert!((loss_r - loss).abs() < 1e-9, "Rust plugin loss {loss_r} vs reference {loss}");
    }
}

#[test]
fn the_header_matches_the_rust_abi() {
    let path = c_plugin(None);
    // SAFETY: our own test plugin; the symbol has the declared type.
    let got: Vec<usize> = unsafe {
        let lib = libloading::Library::new(&path).unwrap();
        let layout: libloading::Symbol<unsafe extern "C" fn(*mut usize, usize) -> usize> =
            lib.get(b"nabla_example_table_layout\0").unwrap();
        let mut out = vec![0usize; 64];
        let n = layout(out.as_mut_ptr(), out.len());
        out.truncate(n);
        out
    };
    let mut want: Vec<usize> = abi::field_offsets().iter().map(|(_, o)| *o).collect();
    want.push(std::mem::size_of::<abi::BackendV1>());
    want.push(std::mem::size_of::<abi::UpdateDesc>());
    want.push(std::mem::offset_of!(abi::UpdateDesc, t));
    want.push(std::mem::offset_of!(abi::UpdateDesc, c2));
    assert_eq!(got, want, "offsets (fields in order, then sizes) of the C header vs the Rust ABI");
    assert!(nabla::plugin::HEADER.contains(&format!("#define NABLA_PLUGIN_ABI_VERSION {}u", abi::ABI_VERSION)));
}

fn load_error(path: &Path) -> String {
    match PluginBackend::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn misbehaving_plugins_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_error(&dir.path().join("missing.so")).contains("no such file"));
    let text = dir.path().join("text.so");
    std::fs::write(&text, "not an ELF file").unwrap();
    assert!(load_error(&text).contains("not a loadable shared library"), "{}", load_error(&text));
    let cases = [
        ("NO_ENTRY", "no `nabla_plugin_entry` symbol"),
        ("NULL_TABLE", "returned no table"),
        ("BAD_VERSION", "ABI version 99"),
        ("SMALL_STRUCT", "table is 16 bytes"),
        ("NULL_FN", "`gemm` function pointer is NULL"),
    ];
    for (define, needle) in cases {
        let e = load_error(&c_plugin(Some(define)));
        assert!(e.contains(needle), "{define}: {e}");
    }
}

#[test]
fn unsupported_ops_and_failing_ops_name_the_op_and_the_plugin() {
    let p = PluginBackend::load(&c_plugin(Some("UNSUPPORTED"))).unwrap();
    let z: <PluginBackend as Backend<f64>>::Buf = p.upload(&[0.5, -0.5]).unwrap();
    let mut a = p.alloc(2).unwrap();
    let e = p.activate(Activation::Gelu, nabla::Dims::new(1, 2), &z, &mut a).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("example-c") && msg.contains("activate (gelu) in f64"), "{msg}");
    p.activate(Activation::Relu, nabla::Dims::new(1, 2), &z, &mut a).unwrap();

    let p = PluginBackend::load(&c_plugin(Some("FAILING"))).unwrap();
    let x: <PluginBackend as Backend<f32>>::Buf = p.upload(&[1.0; 4]).unwrap();
    let mut c = p.alloc(4).unwrap();
    let s = nabla::Gemm { ta: nabla::Trans::No, tb: nabla::Trans::No, m: 2, n: 2, k: 2 };
    let msg = p.gemm(s, 1.0, &x, &x, 0.0, &mut c).unwrap_err().to_string();
    assert!(msg.contains("example-c") && msg.contains("simulated device failure"), "{msg}");
    // Training through a failing plugin stops with the plugin's message, no crash.
    let arch = Architecture::new(&[2, 2], Activation::Identity, Loss::Mse).unwrap();
    let mut net = Network::<f32, _>::new(p, arch, Init::Auto, 1).unwrap();
    let mut opt = net.optimizer(OptimizerConfig::named("sgd", 0.1).unwrap()).unwrap();
    let e = net.train_batch(&[1.0, 2.0], &[0.0, 1.0], &mut opt).unwrap_err().to_string();
    assert!(e.contains("simulated device failure"), "{e}");
}

#[test]
fn capabilities_are_reported() {
    let p = PluginBackend::load(&c_plugin(Some("UNSUPPORTED"))).unwrap();
    assert!(p.supports(Op::Activate, abi::F32, Activation::Relu.code()));
    assert!(!p.supports(Op::Activate, abi::F32, Activation::Gelu.code()));
    let caps = capabilities(&p);
    let act = caps.iter().find(|(op, _)| op == "activate").unwrap();
    assert!(act.1.contains("relu") && !act.1.contains("gelu"), "{caps:?}");
    assert!(caps.iter().any(|(op, v)| op == "gemm" && v.contains("f32: yes")), "{caps:?}");
}

#[test]
fn plugins_run_from_several_threads() {
    // The host serialises calls into a plugin, so sharing one across threads is safe.
    let p = PluginBackend::load(&c_plugin(None)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let v = vec![(t * 100 + i) as f64; 33];
                    let b = p.upload(&v).unwrap();
                    let mut out = vec![0.0; 33];
                    p.download(&b, &mut out).unwrap();
                    assert_eq!(out, v);
                }
            });
        }
    });
}
