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
    // The headers as `nabla plugin-header` writes them (the codes generated from the enums).
    let include = dir.path().join("include");
    std::fs::create_dir_all(&include).expect("include folder");
    nabla::plugin::write_headers(&include).expect("writes the headers");
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
    cmd.args(["-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .args([C_SOURCE, "-o"])
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
            nabla_backend_tests::skip("the Rust example plugin is not built (cargo build -p nabla-plugin-example)");
            None
        }
    }
}

nabla_backend_tests::conformance_tests!(plugin_c, Some(PluginBackend::load(&super::c_plugin(None)).unwrap()));
nabla_backend_tests::conformance_tests!(plugin_rust, super::load_rust());

fn spirals_accuracy<E: Element, B: Backend<E>>(backend: B) -> (f64, f64) {
    let data = nabla::data::synthetic::generate("spirals", Default::default(), 7).unwrap();
    let x: Vec<E> = data.features.iter().map(|&v| E::of(v)).collect();
    let y: Vec<E> = data.target_matrix(3).unwrap().iter().map(|&v| E::of(v)).collect();
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
    want.push(std::mem::size_of::<abi::BackendV2>());
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
    assert!(act.1.contains("relu") && !act.1.split([' ', ';']).any(|w| w == "gelu"), "{caps:?}");
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

#[test]
fn a_buffer_of_another_plugin_is_refused_by_every_op() {
    let c = PluginBackend::load(&c_plugin(None)).unwrap();
    let c_again = PluginBackend::load(&c_plugin(None)).unwrap();
    common::foreign_buffers_are_refused::<f32, _>(&c, &c_again);
    common::foreign_buffers_are_refused::<f64, _>(&c_again, &c);
    let Some(rust) = load_rust() else { return };
    common::foreign_buffers_are_refused::<f32, _>(&c, &rust);
    common::foreign_buffers_are_refused::<f64, _>(&rust, &c);
    // Through the run-time choice too: both are `AnyBackend::Plugin`.
    let opts = nabla::BackendOptions::default();
    let any_c = nabla::AnyBackend::from_name(&format!("plugin:{}", c_plugin(None).display()), &opts).unwrap();
    let any_rust =
        nabla::AnyBackend::from_name(&format!("plugin:{}", rust_plugin().unwrap().display()), &opts).unwrap();
    common::foreign_buffers_are_refused::<f32, _>(&any_c, &any_rust);
    let e = Backend::<f32>::upload(&any_c, &[1.0]).and_then(|x| {
        let mut y = Backend::<f32>::alloc(&any_rust, 1)?;
        any_c.hadamard(1, &x, &mut y)
    });
    let msg = e.unwrap_err().to_string();
    assert!(msg.contains("hadamard") && msg.contains("`y` was made by another backend instance"), "{msg}");
}

/// A plugin's own table, for calls that the host would never make.
struct RawTable {
    _library: libloading::Library,
    table: *const abi::BackendV2,
}

impl RawTable {
    fn open(path: &Path) -> RawTable {
        // SAFETY: the example plugins are ours; the entry is called as the ABI defines it.
        unsafe {
            let library = libloading::Library::new(path).unwrap();
            let entry = *library.get::<abi::EntryFn>(abi::ENTRY).unwrap();
            let table = entry(abi::ABI_VERSION);
            assert!(!table.is_null());
            RawTable { _library: library, table }
        }
    }

    fn t(&self) -> &abi::BackendV2 {
        // SAFETY: returned by the entry, valid until destroy (called in Drop).
        unsafe { &*self.table }
    }

    fn alloc(&self, len: usize) -> *mut abi::Buffer {
        let t = self.t();
        let mut out = std::ptr::null_mut();
        // SAFETY: a valid context and out-pointer.
        assert_eq!(unsafe { t.alloc.unwrap()(t.ctx, abi::F64, len, &mut out) }, abi::OK);
        out
    }
}

impl Drop for RawTable {
    fn drop(&mut self) {
        let t = self.t();
        // SAFETY: the context is destroyed once (its buffers are leaked with it, a test only).
        unsafe { t.destroy.unwrap()(t.ctx) };
    }
}

#[test]
fn an_unknown_code_through_the_abi_is_unsupported_and_an_error() {
    let mut paths = vec![c_plugin(None)];
    paths.extend(rust_plugin());
    for path in paths {
        let raw = RawTable::open(&path);
        let t = raw.t();
        let (z, a, y, g, stats) = (raw.alloc(4), raw.alloc(4), raw.alloc(4), raw.alloc(4), raw.alloc(2));
        // The first code no enum knows, then some further ones.
        let first = [Op::Activate, Op::Loss, Op::Update].map(Op::variants).into_iter().max().unwrap();
        for unknown in [first, 31, 32, 99, u32::MAX] {
            // SAFETY: valid context and buffers of 4 (2 for stats) f64 elements; the code is the test.
            unsafe {
                for op in [Op::Activate, Op::ActivateGrad, Op::Loss, Op::Update] {
                    let said = t.supports.unwrap()(t.ctx, op as u32, abi::F64, unknown);
                    assert_eq!(said, 0, "{}: {} reports code {unknown} supported", path.display(), op.name());
                }
                let status = t.activate.unwrap()(t.ctx, abi::F64, unknown, 0.0, 1, 4, z, a);
                assert_eq!(status, abi::ERROR, "activate with code {unknown}");
                let status = t.activate_grad.unwrap()(t.ctx, abi::F64, unknown, 0.0, 1, 4, z, a, g);
                assert_eq!(status, abi::ERROR, "activate_grad with code {unknown}");
                let status = t.loss.unwrap()(t.ctx, abi::F64, unknown, 1.0, 1, 4, z, y, g, stats);
                assert_eq!(status, abi::ERROR, "loss with code {unknown}");
                let desc = abi::UpdateDesc {
                    rule: unknown,
                    reserved: 0,
                    t: 1,
                    lr: 0.1,
                    l2: 0.0,
                    decay: 0.0,
                    p: [0.9; 4],
                    c1: 1.0,
                    c2: 1.0,
                };
                let status = t.update.unwrap()(t.ctx, abi::F64, &desc, 4, a, g, z, y);
                assert_eq!(status, abi::ERROR, "update with rule {unknown}");
            }
        }
        // The known codes are all supported (supports() lists what is implemented, no more, no less).
        for f in Activation::ALL {
            // SAFETY: as above.
            assert_eq!(unsafe { t.supports.unwrap()(t.ctx, Op::Activate as u32, abi::F64, f.code()) }, 1, "{f}");
        }
    }
    // The host asks about and reports any code without overflowing its bit set.
    let p = PluginBackend::load(&c_plugin(None)).unwrap();
    for v in [31, 32, 33, 200, u32::MAX] {
        assert!(!p.supports(Op::Activate, abi::F32, v), "code {v}");
    }
    assert!(!p.supports(Op::Activate, 7, 0), "dtype 7");
}

#[test]
fn a_rust_plugin_refuses_aliased_buffers_and_takes_empty_host_copies() {
    let Some(path) = rust_plugin() else { return nabla_backend_tests::skip("the Rust example plugin is not built") };
    let raw = RawTable::open(&path);
    let t = raw.t();
    let (x, y) = (raw.alloc(4), raw.alloc(4));
    // SAFETY: valid context and buffers; aliasing and NULL are what the plugin must refuse or accept.
    unsafe {
        assert_eq!(t.hadamard.unwrap()(t.ctx, abi::F64, 4, x, y), abi::OK);
        assert_eq!(t.hadamard.unwrap()(t.ctx, abi::F64, 4, x, x), abi::ERROR, "x aliased as y");
        let msg = std::ffi::CStr::from_ptr(t.last_error.unwrap()(t.ctx)).to_string_lossy().into_owned();
        assert!(msg.contains("same buffer twice"), "{msg}");
        assert_eq!(t.gemm.unwrap()(t.ctx, abi::F64, 0, 0, 2, 2, 1, 1.0, x, x, 0.0, y), abi::OK, "A = B is fine");
        assert_eq!(t.gemm.unwrap()(t.ctx, abi::F64, 0, 0, 2, 2, 1, 1.0, x, y, 0.0, y), abi::ERROR, "B = C");
        let stats = raw.alloc(2);
        assert_eq!(t.loss.unwrap()(t.ctx, abi::F64, 0, 0.0, 1, 2, x, y, stats, stats), abi::ERROR, "grad = stats");
        // A zero-length copy may pass NULL; a non-empty one may not.
        assert_eq!(t.write.unwrap()(t.ctx, abi::F64, std::ptr::null(), 0, x), abi::OK);
        assert_eq!(t.read.unwrap()(t.ctx, abi::F64, x, std::ptr::null_mut(), 0), abi::OK);
        assert_eq!(t.write.unwrap()(t.ctx, abi::F64, std::ptr::null(), 2, x), abi::ERROR);
        let misaligned = [0u8; 24];
        assert_eq!(t.write.unwrap()(t.ctx, abi::F64, misaligned.as_ptr().add(1).cast(), 2, x), abi::ERROR);
    }
}

#[test]
fn a_refused_plugin_gets_its_context_destroyed() {
    let path = c_plugin(Some("NULL_FN"));
    // Hold the library open, so that its counter survives the host's unload.
    // SAFETY: our own test plugin; the symbol has the declared type.
    let library = unsafe { libloading::Library::new(&path) }.unwrap();
    let live = unsafe { *library.get::<unsafe extern "C" fn() -> i32>(b"nabla_example_live_contexts").unwrap() };
    assert!(load_error(&path).contains("`gemm` function pointer is NULL"));
    // SAFETY: a plain counter read.
    assert_eq!(unsafe { live() }, 0, "the refused plugin's context was not destroyed");
}

/// The conformance kit's report on a plugin with one wrong formula (the sigmoid's derivative
/// off by 0.01): that row fails in both dtypes (on small and on large shapes), and so does the
/// training step whose hidden layers are sigmoid; every other row passes.
#[test]
fn the_conformance_kit_names_the_wrong_op_of_a_broken_plugin() {
    let broken = PluginBackend::load(&c_plugin(Some("WRONG_SIGMOID_GRAD"))).unwrap();
    for report in [nabla_backend_tests::run::<f32, _>(&broken), nabla_backend_tests::run::<f64, _>(&broken)] {
        assert!(!report.passed());
        let failed: Vec<(&str, &str)> = report.failures().map(|r| (r.op.as_str(), r.variant.as_str())).collect();
        assert!(failed.contains(&("activate_grad", "sigmoid")), "{}", report.table());
        for (op, variant) in &failed {
            let sigmoid_step = *op == "training_step" && variant.contains("sigmoid");
            assert!(*op == "activate_grad" && variant.starts_with("sigmoid") || sigmoid_step, "{op} {variant} failed");
        }
        let row = report.rows.iter().find(|r| r.op == "activate_grad" && r.variant == "sigmoid").unwrap();
        assert!(row.max_error > 0.01 && row.detail.contains("error"), "{row:?}");
    }
}

/// The `nabla` binary of this workspace's build (`cargo test --workspace --all-features` builds
/// it), if it is built with plugin support; `None` after saying so, or a panic where
/// `NABLA_REQUIRE_BINARY=1` (as `make test` sets) says it must be there.
fn nabla_binary() -> Option<PathBuf> {
    let found = plugin_enabled_binary();
    if found.is_none() {
        let why = "no nabla binary with plugins (cargo build -p nabla-cli --features plugins)";
        assert!(std::env::var("NABLA_REQUIRE_BINARY").is_err(), "{why}, and NABLA_REQUIRE_BINARY is set");
        nabla_backend_tests::skip(why);
    }
    found
}

fn plugin_enabled_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join(format!("nabla{}", std::env::consts::EXE_SUFFIX));
    let out = std::process::Command::new(&path).args(["backends", "--json"]).output().ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let plugins = json["backends"]
        .as_array()?
        .iter()
        .any(|b| b["backend"].as_str().is_some_and(|name| name.starts_with("plugin")) && b["compiled"] == true);
    plugins.then_some(path)
}

/// `nabla check-backend plugin:PATH`: exit 0 and a passing JSON report for the example
/// plugins; exit 1 and the failing row named in the table for the broken one.
#[test]
fn check_backend_passes_the_example_plugins_and_fails_the_broken_one() {
    let Some(nabla) = nabla_binary() else { return };
    let check = |plugin: &Path| {
        let out = std::process::Command::new(&nabla)
            .args(["check-backend", &format!("plugin:{}", plugin.display()), "--json"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let last = stdout.lines().last().unwrap_or_default().to_string();
        let json: serde_json::Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        (out.status.code(), stdout, json)
    };
    let mut plugins = vec![c_plugin(None)];
    plugins.extend(rust_plugin());
    for p in plugins {
        let (code, table, json) = check(&p);
        assert_eq!(code, Some(0), "{}: {table}", p.display());
        assert_eq!(json["passed"], true);
        let rows = json["rows"].as_array().unwrap();
        assert!(rows.iter().all(|r| r["result"] == "pass"), "{table}");
        assert!(rows.iter().any(|r| r["op"] == "activate_grad" && r["variant"] == "silu" && r["dtype"] == "f32"));
    }
    let (code, table, json) = check(&c_plugin(Some("WRONG_SIGMOID_GRAD")));
    assert_eq!(code, Some(1), "{table}");
    assert_eq!(json["passed"], false);
    let line = table.lines().find(|l| l.starts_with("activate_grad") && l.contains(" sigmoid ")).unwrap();
    assert!(line.contains("fail"), "{line}");
    assert!(table.contains("does NOT conform"), "{table}");
}

/// `nabla compare reference,plugin:BROKEN`: the forward pass agrees, and the first op named as
/// diverging is the hidden layer's δ through the wrong sigmoid derivative; exit status 1.
#[test]
fn compare_names_the_first_op_where_a_broken_plugin_diverges() {
    let Some(nabla) = nabla_binary() else { return };
    let broken = format!("plugin:{}", c_plugin(Some("WRONG_SIGMOID_GRAD")).display());
    let out = std::process::Command::new(&nabla)
        .args(["compare", "--backends", &format!("reference,{broken}"), "--activation", "sigmoid", "--epochs", "3"])
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["agree"], false);
    let at = json["backends"][1]["first_step_diverges_at"].as_str().unwrap();
    assert_eq!(at, "layer 2 δ = (δ W) ⊙ σ'(Z) (gemm, activate_grad sigmoid)", "{json}");
}
