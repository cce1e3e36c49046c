//! The host side: [`PluginBackend`] loads a plugin from an explicit path and implements
//! [`Backend`] by calling through its table.
//!
//! Every misbehaviour is an error, not a crash: a missing file, a file that is not a shared
//! library, a missing entry symbol, a NULL table, another ABI version, a table too small, a NULL
//! function pointer, an op the plugin reports unsupported, an op that returns an error code.
//! Calls into one plugin are serialised by a mutex, so a plugin need not be thread-safe.

use std::ffi::{CStr, c_void};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex};

use libloading::Library;
use nabla_core::backend::{Backend, Dims, Gemm, Owner, Trans};
use nabla_core::{Activation, Element, Error, Loss, Result, Update, check};

use crate::abi::{self, BackendV2, Buffer, Op, UpdateDesc};

/// An element type a plugin can compute in, with its ABI code.
pub trait PluginFloat: Element {
    /// `NABLA_F32` or `NABLA_F64`.
    const CODE: u32;
}

impl PluginFloat for f32 {
    const CODE: u32 = abi::F32;
}

impl PluginFloat for f64 {
    const CODE: u32 = abi::F64;
}

/// What the host keeps of a loaded plugin. Dropped last of all its buffers (each holds an
/// `Arc` to it); dropping calls the plugin's `destroy`, then unloads the library.
struct Loaded {
    table: *const BackendV2,
    name: String,
    path: PathBuf,
    /// Bit `v` of `supported[op][dtype]`: the op supports variant `v` in that dtype.
    supported: [[u32; 2]; 11],
    /// Serialises every call into the plugin.
    lock: Mutex<()>,
    /// The identity its buffers carry: a buffer of another plugin (or another load of the same
    /// one) is refused, since its handle means nothing to this context.
    owner: Owner,
    /// Declared last so that it is dropped (unloaded) after `destroy` has run.
    _library: Library,
}

// SAFETY: the table and context pointers are only used under `lock`, one call at a time, and
// stay valid until `Drop` (the library is unloaded after that).
unsafe impl Send for Loaded {}
// SAFETY: as above.
unsafe impl Sync for Loaded {}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _guard = self.lock.lock();
        // SAFETY: `table` was checked at load and the library is still loaded; `destroy` is
        // called once, after every buffer (each holding an Arc to us) has been freed.
        unsafe {
            if let Some(destroy) = (*self.table).destroy {
                destroy((*self.table).ctx);
            }
        }
    }
}

/// A backend loaded at run time from a shared library (see `docs/plugins.md`).
#[derive(Clone)]
pub struct PluginBackend {
    loaded: Arc<Loaded>,
}

impl std::fmt::Debug for PluginBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginBackend({} from {})", self.loaded.name, self.loaded.path.display())
    }
}

/// A buffer owned by a plugin; freed by the plugin when dropped.
pub struct PluginBuf<E> {
    ptr: NonNull<Buffer>,
    len: usize,
    loaded: Arc<Loaded>,
    _element: PhantomData<E>,
}

impl<E> std::fmt::Debug for PluginBuf<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBuf").field("plugin", &self.loaded.name).field("len", &self.len).finish()
    }
}

// SAFETY: the buffer is an opaque handle; the plugin is only entered under `Loaded::lock`.
unsafe impl<E> Send for PluginBuf<E> {}
// SAFETY: as above.
unsafe impl<E> Sync for PluginBuf<E> {}

impl<E> Drop for PluginBuf<E> {
    fn drop(&mut self) {
        let _guard = self.loaded.lock.lock();
        // SAFETY: the pointer came from this plugin's `alloc` and is freed exactly once.
        unsafe {
            if let Some(free) = (*self.loaded.table).free_buffer {
                free((*self.loaded.table).ctx, self.ptr.as_ptr());
            }
        }
    }
}

impl<E> PluginBuf<E> {
    /// The plugin instance that allocated this buffer.
    pub fn owner(&self) -> Owner {
        self.loaded.owner
    }

    fn raw(&self) -> *const Buffer {
        self.ptr.as_ptr()
    }

    fn raw_mut(&mut self) -> *mut Buffer {
        self.ptr.as_ptr()
    }
}

/// The required function pointers (the others, `copy` and `bias_add_activate`, are optional).
const REQUIRED: [&str; 17] = [
    "supports",
    "last_error",
    "destroy",
    "alloc",
    "free_buffer",
    "write",
    "read",
    "synchronize",
    "gemm",
    "hadamard",
    "bias_add",
    "activate",
    "activate_grad",
    "sum_rows",
    "loss",
    "update",
    "dropout_mask",
];

impl PluginBackend {
    /// Loads the plugin at `path`. Only that file is opened: no directory is searched.
    ///
    /// Loading a plugin runs its code with this process's rights; load only plugins you trust.
    pub fn load(path: &Path) -> Result<PluginBackend> {
        let bad = |reason: String| Error::Unavailable { backend: format!("plugin:{}", path.display()), reason };
        if !path.is_file() {
            return Err(bad("no such file (give the path to the plugin's shared library)".into()));
        }
        // An absolute path, so that the dynamic loader does not search anywhere.
        let abs = path.canonicalize().map_err(|e| bad(format!("cannot resolve the path: {e}")))?;
        // SAFETY: loading a library runs its initialisers; that is the documented contract of a
        // plugin (it runs with the user's rights).
        let library = unsafe { Library::new(&abs) }.map_err(|e| bad(format!("not a loadable shared library: {e}")))?;
        // SAFETY: the symbol is looked up with the type the ABI gives it.
        let entry = unsafe { library.get::<abi::EntryFn>(abi::ENTRY) }
            .map_err(|_| bad("no `nabla_plugin_entry` symbol: is this a nabla plugin?".into()))?;
        // SAFETY: calling the plugin's entry as the ABI defines it.
        let table = unsafe { entry(abi::ABI_VERSION) };
        if table.is_null() {
            return Err(bad(format!("its entry returned no table for ABI version {}", abi::ABI_VERSION)));
        }
        // SAFETY: non-null; the first two fields are read before trusting the size.
        let (version, size) = unsafe { ((*table).abi_version, (*table).struct_size as usize) };
        if version != abi::ABI_VERSION {
            return Err(bad(format!(
                "it speaks ABI version {version}; this nabla speaks version {}",
                abi::ABI_VERSION
            )));
        }
        if size < std::mem::size_of::<BackendV2>() {
            return Err(bad(format!(
                "its table is {size} bytes but ABI version {} needs {} (built against another header?)",
                abi::ABI_VERSION,
                std::mem::size_of::<BackendV2>()
            )));
        }
        // SAFETY: the table is at least as large as `BackendV2`.
        let t = unsafe { &*table };
        if let Some(missing) = REQUIRED.iter().find(|name| is_null(t, name)) {
            // The plugin made a context for us: give it back before refusing the plugin.
            if let Some(destroy) = t.destroy {
                // SAFETY: the table's version and size are ours, so `destroy` is where the ABI
                // puts it; the context is not used again.
                unsafe { destroy(t.ctx) };
            }
            return Err(bad(format!("its `{missing}` function pointer is NULL")));
        }
        let name = if t.name.is_null() {
            "unnamed".to_string()
        } else {
            // SAFETY: a NUL-terminated string owned by the plugin.
            unsafe { CStr::from_ptr(t.name) }.to_string_lossy().into_owned()
        };
        let mut supported = [[0u32; 2]; 11];
        for op in Op::ALL {
            for dtype in [abi::F32, abi::F64] {
                for v in 0..op.variants() {
                    // SAFETY: `supports` is non-null (checked above).
                    let yes = unsafe { t.supports.map_or(0, |f| f(t.ctx, op as u32, dtype, v)) };
                    if yes != 0 && v < u32::BITS {
                        supported[op as usize][dtype as usize] |= 1 << v;
                    }
                }
            }
        }
        let loaded =
            Loaded { table, name, path: abs, supported, lock: Mutex::new(()), owner: Owner::new(), _library: library };
        Ok(PluginBackend { loaded: Arc::new(loaded) })
    }

    /// The plugin's own name.
    pub fn plugin_name(&self) -> &str {
        &self.loaded.name
    }

    /// Whether the plugin supports `op` in `dtype` for `variant` (activation, loss or rule
    /// code; 0 for the others).
    pub fn supports(&self, op: Op, dtype: u32, variant: u32) -> bool {
        let bits = if dtype < 2 { self.loaded.supported[op as usize][dtype as usize] } else { 0 };
        bits.checked_shr(variant).is_some_and(|b| b & 1 != 0)
    }

    /// Refuses any operand that another plugin instance allocated.
    fn own<E, const N: usize>(&self, op: &'static str, operands: [(&str, &PluginBuf<E>); N]) -> Result<()> {
        self.loaded.owner.check(|| self.name_for_errors(), op, &operands.map(|(name, b)| (name, b.owner())))
    }

    fn table(&self) -> &BackendV2 {
        // SAFETY: checked at load; valid while `loaded` lives.
        unsafe { &*self.loaded.table }
    }

    fn require(&self, op: Op, dtype: u32, variant: u32, what: impl FnOnce() -> String) -> Result<()> {
        if self.supports(op, dtype, variant) {
            return Ok(());
        }
        let ty = if dtype == abi::F32 { "f32" } else { "f64" };
        Err(Error::Unsupported { backend: format!("plugin `{}`", self.loaded.name), op: format!("{} in {ty}", what()) })
    }

    /// Calls into the plugin under the lock and turns an error status into an error with the
    /// plugin's message.
    fn call(&self, op: &str, f: impl FnOnce(&BackendV2) -> abi::Status) -> Result<()> {
        let _guard =
            self.loaded.lock.lock().map_err(|_| Error::backend(self.name_for_errors(), "a previous call panicked"))?;
        let t = self.table();
        let status = f(t);
        if status == abi::OK {
            return Ok(());
        }
        // SAFETY: `last_error` is non-null; its string is valid until the next call, which
        // cannot happen while we hold the lock.
        let message = unsafe {
            t.last_error
                .map(|le| le(t.ctx))
                .filter(|p| !p.is_null())
                .map(|p| CStr::from_ptr(p).to_string_lossy().into_owned())
                .unwrap_or_else(|| "(no message)".into())
        };
        Err(Error::backend(self.name_for_errors(), format!("{op} failed with code {status}: {message}")))
    }

    fn name_for_errors(&self) -> String {
        format!("plugin `{}`", self.loaded.name)
    }
}

/// Whether the named function pointer of `t` is NULL.
fn is_null(t: &BackendV2, name: &str) -> bool {
    match name {
        "supports" => t.supports.is_none(),
        "last_error" => t.last_error.is_none(),
        "destroy" => t.destroy.is_none(),
        "alloc" => t.alloc.is_none(),
        "free_buffer" => t.free_buffer.is_none(),
        "write" => t.write.is_none(),
        "read" => t.read.is_none(),
        "synchronize" => t.synchronize.is_none(),
        "gemm" => t.gemm.is_none(),
        "hadamard" => t.hadamard.is_none(),
        "bias_add" => t.bias_add.is_none(),
        "activate" => t.activate.is_none(),
        "activate_grad" => t.activate_grad.is_none(),
        "sum_rows" => t.sum_rows.is_none(),
        "loss" => t.loss.is_none(),
        "update" => t.update.is_none(),
        "dropout_mask" => t.dropout_mask.is_none(),
        _ => false,
    }
}

/// Calls a function pointer checked non-null at load (an `Option` by type only).
macro_rules! ffi {
    ($t:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $t.$f {
            // SAFETY: the arguments follow the ABI's signature; pointers are to live buffers of
            // this plugin whose sizes were checked, and the call holds the plugin's lock.
            Some(f) => unsafe { f($($arg),*) },
            None => abi::ERROR,
        }
    };
}

impl<E: PluginFloat> Backend<E> for PluginBackend {
    type Buf = PluginBuf<E>;

    fn name(&self) -> String {
        format!("plugin:{}", self.loaded.name)
    }

    fn alloc(&self, len: usize) -> Result<PluginBuf<E>> {
        let mut out: *mut Buffer = ptr::null_mut();
        self.call("alloc", |t| ffi!(t, alloc(t.ctx, E::CODE, len, &mut out)))?;
        let ptr =
            NonNull::new(out).ok_or_else(|| Error::backend(self.name_for_errors(), "alloc returned a NULL buffer"))?;
        Ok(PluginBuf { ptr, len, loaded: self.loaded.clone(), _element: PhantomData })
    }

    fn len(&self, buf: &PluginBuf<E>) -> usize {
        buf.len
    }

    fn write(&self, host: &[E], buf: &mut PluginBuf<E>) -> Result<()> {
        check::elementwise("write", host.len(), &[("buffer", buf.len)])?;
        self.own("write", [("buffer", buf)])?;
        let (src, n, dst) = (host.as_ptr().cast::<c_void>(), host.len(), buf.raw_mut());
        self.call("write", |t| ffi!(t, write(t.ctx, E::CODE, src, n, dst)))
    }

    fn download(&self, buf: &PluginBuf<E>, host: &mut [E]) -> Result<()> {
        check::elementwise("download", host.len(), &[("buffer", buf.len)])?;
        self.own("download", [("buffer", buf)])?;
        let (src, n, dst) = (buf.raw(), host.len(), host.as_mut_ptr().cast::<c_void>());
        self.call("read", |t| ffi!(t, read(t.ctx, E::CODE, src, dst, n)))
    }

    fn synchronize(&self) -> Result<()> {
        self.call("synchronize", |t| ffi!(t, synchronize(t.ctx)))
    }

    fn gemm(&self, s: Gemm, alpha: E, a: &PluginBuf<E>, b: &PluginBuf<E>, beta: E, c: &mut PluginBuf<E>) -> Result<()> {
        check::gemm(&s, a.len, b.len, c.len)?;
        self.own("gemm", [("A", a), ("B", b), ("C", c)])?;
        self.require(Op::Gemm, E::CODE, 0, || "gemm".into())?;
        let (ta, tb) = (u32::from(s.ta == Trans::Yes), u32::from(s.tb == Trans::Yes));
        let (pa, pb, pc) = (a.raw(), b.raw(), c.raw_mut());
        self.call("gemm", |t| ffi!(t, gemm(t.ctx, E::CODE, ta, tb, s.m, s.n, s.k, alpha.f64(), pa, pb, beta.f64(), pc)))
    }

    fn copy(&self, len: usize, src: &PluginBuf<E>, dst: &mut PluginBuf<E>) -> Result<()> {
        check::elementwise("copy", len, &[("src", src.len), ("dst", dst.len)])?;
        self.own("copy", [("src", src), ("dst", dst)])?;
        if self.table().copy.is_none() || !self.supports(Op::Copy, E::CODE, 0) {
            return self.activate(Activation::Identity, Dims::new(1, len), src, dst);
        }
        let (ps, pd) = (src.raw(), dst.raw_mut());
        self.call("copy", |t| ffi!(t, copy(t.ctx, E::CODE, len, ps, pd)))
    }

    fn hadamard(&self, len: usize, x: &PluginBuf<E>, y: &mut PluginBuf<E>) -> Result<()> {
        check::elementwise("hadamard", len, &[("x", x.len), ("y", y.len)])?;
        self.own("hadamard", [("x", x), ("y", y)])?;
        self.require(Op::Hadamard, E::CODE, 0, || "hadamard".into())?;
        let (px, py) = (x.raw(), y.raw_mut());
        self.call("hadamard", |t| ffi!(t, hadamard(t.ctx, E::CODE, len, px, py)))
    }

    fn bias_add(&self, d: Dims, bias: &PluginBuf<E>, z: &mut PluginBuf<E>) -> Result<()> {
        check::bias("bias_add", d, bias.len)?;
        check::matrices("bias_add", d, &[("z", z.len)])?;
        self.own("bias_add", [("bias", bias), ("z", z)])?;
        self.require(Op::BiasAdd, E::CODE, 0, || "bias_add".into())?;
        let (pb, pz) = (bias.raw(), z.raw_mut());
        self.call("bias_add", |t| ffi!(t, bias_add(t.ctx, E::CODE, d.rows, d.cols, pb, pz)))
    }

    fn activate(&self, f: Activation, d: Dims, z: &PluginBuf<E>, a: &mut PluginBuf<E>) -> Result<()> {
        check::matrices("activate", d, &[("z", z.len), ("a", a.len)])?;
        self.own("activate", [("z", z), ("a", a)])?;
        self.require(Op::Activate, E::CODE, f.code(), || format!("activate ({f})"))?;
        let (pz, pa) = (z.raw(), a.raw_mut());
        self.call("activate", |t| ffi!(t, activate(t.ctx, E::CODE, f.code(), f.alpha(), d.rows, d.cols, pz, pa)))
    }

    fn bias_add_activate(
        &self,
        f: Activation,
        d: Dims,
        bias: &PluginBuf<E>,
        z: &mut PluginBuf<E>,
        a: &mut PluginBuf<E>,
    ) -> Result<()> {
        if self.table().bias_add_activate.is_none() {
            self.bias_add(d, bias, z)?;
            return self.activate(f, d, z, a);
        }
        check::bias("bias_add_activate", d, bias.len)?;
        check::matrices("bias_add_activate", d, &[("z", z.len), ("a", a.len)])?;
        self.own("bias_add_activate", [("bias", bias), ("z", z), ("a", a)])?;
        self.require(Op::BiasAdd, E::CODE, 0, || "bias_add".into())?;
        self.require(Op::Activate, E::CODE, f.code(), || format!("activate ({f})"))?;
        let (pb, pz, pa) = (bias.raw(), z.raw_mut(), a.raw_mut());
        self.call("bias_add_activate", |t| {
            ffi!(t, bias_add_activate(t.ctx, E::CODE, f.code(), f.alpha(), d.rows, d.cols, pb, pz, pa))
        })
    }

    fn activate_grad(
        &self,
        f: Activation,
        d: Dims,
        z: &PluginBuf<E>,
        a: &PluginBuf<E>,
        delta: &mut PluginBuf<E>,
    ) -> Result<()> {
        check::matrices("activate_grad", d, &[("z", z.len), ("a", a.len), ("delta", delta.len)])?;
        self.own("activate_grad", [("z", z), ("a", a), ("delta", delta)])?;
        self.require(Op::ActivateGrad, E::CODE, f.code(), || format!("activate_grad ({f})"))?;
        let (pz, pa, pd) = (z.raw(), a.raw(), delta.raw_mut());
        self.call("activate_grad", |t| {
            ffi!(t, activate_grad(t.ctx, E::CODE, f.code(), f.alpha(), d.rows, d.cols, pz, pa, pd))
        })
    }

    fn sum_rows(&self, d: Dims, alpha: E, x: &PluginBuf<E>, beta: E, out: &mut PluginBuf<E>) -> Result<()> {
        check::matrices("sum_rows", d, &[("x", x.len)])?;
        check::bias("sum_rows", d, out.len)?;
        self.own("sum_rows", [("x", x), ("out", out)])?;
        self.require(Op::SumRows, E::CODE, 0, || "sum_rows".into())?;
        let (px, po) = (x.raw(), out.raw_mut());
        self.call("sum_rows", |t| ffi!(t, sum_rows(t.ctx, E::CODE, d.rows, d.cols, alpha.f64(), px, beta.f64(), po)))
    }

    fn loss(
        &self,
        l: Loss,
        d: Dims,
        out: &PluginBuf<E>,
        target: &PluginBuf<E>,
        grad: &mut PluginBuf<E>,
        stats: &mut PluginBuf<E>,
    ) -> Result<()> {
        check::matrices("loss", d, &[("output", out.len), ("target", target.len), ("grad", grad.len)])?;
        check::stats(stats.len)?;
        self.own("loss", [("output", out), ("target", target), ("grad", grad), ("stats", stats)])?;
        self.require(Op::Loss, E::CODE, l.code(), || format!("loss ({l})"))?;
        let (po, py, pg, ps) = (out.raw(), target.raw(), grad.raw_mut(), stats.raw_mut());
        self.call("loss", |t| ffi!(t, loss(t.ctx, E::CODE, l.code(), l.param(), d.rows, d.cols, po, py, pg, ps)))
    }

    fn update(
        &self,
        u: &Update,
        len: usize,
        w: &mut PluginBuf<E>,
        g: &PluginBuf<E>,
        state: &mut [&mut PluginBuf<E>],
    ) -> Result<()> {
        check::elementwise("update", len, &[("w", w.len), ("g", g.len)])?;
        check::state(len, u.rule.state_count(), state.iter().map(|s| s.len))?;
        self.own("update", [("w", w), ("g", g)])?;
        for s in state.iter() {
            self.own("update", [("state", s)])?;
        }
        self.require(Op::Update, E::CODE, u.rule.code(), || format!("update ({:?})", u.rule))?;
        let (c1, c2) = u.adam_corrections();
        let desc = UpdateDesc {
            rule: u.rule.code(),
            reserved: 0,
            t: u.t,
            lr: u.lr,
            l2: u.l2,
            decay: u.decay,
            p: u.rule.params(),
            c1,
            c2,
        };
        let mut raw = state.iter_mut().map(|s| s.raw_mut());
        let (s0, s1) = (raw.next().unwrap_or(ptr::null_mut()), raw.next().unwrap_or(ptr::null_mut()));
        let (pw, pg) = (w.raw_mut(), g.raw());
        self.call("update", |t| ffi!(t, update(t.ctx, E::CODE, &desc, len, pw, pg, s0, s1)))
    }

    fn dropout_mask(&self, len: usize, rate: f64, seed: u64, first: u64, mask: &mut PluginBuf<E>) -> Result<()> {
        check::elementwise("dropout_mask", len, &[("mask", mask.len)])?;
        self.own("dropout_mask", [("mask", mask)])?;
        self.require(Op::DropoutMask, E::CODE, 0, || "dropout_mask".into())?;
        if first != 0 {
            // ABI v1's dropout_mask draws from the stream's start: a shard's mask is drawn here
            // and written (only data-parallel runs with dropout need it).
            let mut host = nabla_core::memory::filled(len, E::zero(), "a dropout mask")?;
            nabla_core::cpu::dropout_mask(len, rate, seed, first, &mut host)?;
            return self.write(&host, mask);
        }
        let pm = mask.raw_mut();
        self.call("dropout_mask", |t| ffi!(t, dropout_mask(t.ctx, E::CODE, len, rate, seed, pm)))
    }
}

/// What a plugin supports, as lines for `nabla backends --plugin`.
pub fn capabilities(p: &PluginBackend) -> Vec<(String, String)> {
    let names = |op: Op, v: u32| -> String {
        match op {
            Op::Activate | Op::ActivateGrad => {
                Activation::from_code(v, 0.0).map_or(v.to_string(), |a| a.to_string().replace(":0", ""))
            }
            Op::Loss => Loss::from_code(v, 0.0).map_or(v.to_string(), |l| l.to_string().replace(":0", "")),
            Op::Update => ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "rprop"]
                .get(v as usize)
                .map_or(v.to_string(), |s| s.to_string()),
            _ => String::new(),
        }
    };
    Op::ALL
        .iter()
        .map(|&op| {
            let per_dtype: Vec<String> = [(abi::F32, "f32"), (abi::F64, "f64")]
                .iter()
                .map(|&(d, ty)| {
                    let vs: Vec<String> =
                        (0..op.variants()).filter(|&v| p.supports(op, d, v)).map(|v| names(op, v)).collect();
                    match (vs.len(), op.variants()) {
                        (0, _) => format!("{ty}: no"),
                        (n, all) if n as u32 == all && all == 1 => format!("{ty}: yes"),
                        (n, all) if n as u32 == all => format!("{ty}: all"),
                        _ => format!("{ty}: {}", vs.join(" ")),
                    }
                })
                .collect();
            (op.name().to_string(), per_dtype.join("; "))
        })
        .collect()
}
