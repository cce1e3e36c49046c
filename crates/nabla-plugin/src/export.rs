//! The plugin side, for plugins written in Rust: [`export_plugin!`](crate::export_plugin) turns
//! any type implementing `Backend<f32> + Backend<f64>` into the C table of the ABI. Each call
//! catches panics (a panic must not cross the C boundary) and reports errors through
//! `last_error`.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use nabla_core::backend::{Backend, Dims, Gemm, Trans};
use nabla_core::{Activation, Element, Error, Loss, Result, Rule, Update};

use crate::abi::{self, BackendV2, Buffer, Context, Op, Status, UpdateDesc};

/// A backend that can be exported: it computes in both element types.
pub trait Exportable: Backend<f32> + Backend<f64> + Send + Sync + 'static {}

impl<B: Backend<f32> + Backend<f64> + Send + Sync + 'static> Exportable for B {}

/// A buffer handed to the host: it remembers its element type.
enum ExportBuf<B: Exportable> {
    F32(<B as Backend<f32>>::Buf),
    F64(<B as Backend<f64>>::Buf),
}

/// Picks (and makes) the buffer variant of an element type.
trait Pick: Element {
    fn wrap<B>(b: <B as Backend<Self>>::Buf) -> ExportBuf<B>
    where
        B: Exportable + Backend<Self>;
    fn pick<B>(b: &ExportBuf<B>) -> Option<&<B as Backend<Self>>::Buf>
    where
        B: Exportable + Backend<Self>;
    fn pick_mut<B>(b: &mut ExportBuf<B>) -> Option<&mut <B as Backend<Self>>::Buf>
    where
        B: Exportable + Backend<Self>;
}

impl Pick for f32 {
    fn wrap<B: Exportable>(b: <B as Backend<f32>>::Buf) -> ExportBuf<B> {
        ExportBuf::F32(b)
    }
    fn pick<B: Exportable>(b: &ExportBuf<B>) -> Option<&<B as Backend<f32>>::Buf> {
        if let ExportBuf::F32(x) = b { Some(x) } else { None }
    }
    fn pick_mut<B: Exportable>(b: &mut ExportBuf<B>) -> Option<&mut <B as Backend<f32>>::Buf> {
        if let ExportBuf::F32(x) = b { Some(x) } else { None }
    }
}

impl Pick for f64 {
    fn wrap<B: Exportable>(b: <B as Backend<f64>>::Buf) -> ExportBuf<B> {
        ExportBuf::F64(b)
    }
    fn pick<B: Exportable>(b: &ExportBuf<B>) -> Option<&<B as Backend<f64>>::Buf> {
        if let ExportBuf::F64(x) = b { Some(x) } else { None }
    }
    fn pick_mut<B: Exportable>(b: &mut ExportBuf<B>) -> Option<&mut <B as Backend<f64>>::Buf> {
        if let ExportBuf::F64(x) = b { Some(x) } else { None }
    }
}

/// The plugin's context: the table (whose `ctx` points back here), the backend and the last
/// error message.
#[repr(C)]
struct ExportCtx<B: Exportable> {
    table: BackendV2,
    backend: B,
    name: CString,
    last_error: RefCell<CString>,
}

fn ctx<'a, B: Exportable>(c: *mut Context) -> &'a ExportCtx<B> {
    // SAFETY: `c` is the pointer `entry` put in the table, valid until `destroy`.
    unsafe { &*c.cast::<ExportCtx<B>>() }
}

fn buf<'a, B, E: Pick>(p: *const Buffer) -> Result<&'a <B as Backend<E>>::Buf>
where
    B: Exportable + Backend<E>,
{
    // SAFETY: buffers are `Box<ExportBuf<B>>` pointers from `alloc`, live until `free_buffer`.
    let b = unsafe { p.cast::<ExportBuf<B>>().as_ref() }.ok_or_else(|| Error::invalid("buffer", "NULL"))?;
    E::pick(b).ok_or_else(|| Error::invalid("buffer", "its element type differs from the call's"))
}

fn buf_mut<'a, B, E: Pick>(p: *mut Buffer) -> Result<&'a mut <B as Backend<E>>::Buf>
where
    B: Exportable + Backend<E>,
{
    // SAFETY: as in `buf`; `unaliased` has checked that no other operand of the call is this one.
    let b = unsafe { p.cast::<ExportBuf<B>>().as_mut() }.ok_or_else(|| Error::invalid("buffer", "NULL"))?;
    E::pick_mut(b).ok_or_else(|| Error::invalid("buffer", "its element type differs from the call's"))
}

/// Refuses a call in which a buffer to be written is also passed as another operand: the
/// backend's `&mut` would alias. (A C host can pass the same handle twice; Rust callers cannot.)
fn unaliased(op: &str, written: &[*const Buffer], read: &[*const Buffer]) -> Result<()> {
    for (i, w) in written.iter().enumerate().filter(|(_, w)| !w.is_null()) {
        if written[i + 1..].contains(w) || read.contains(w) {
            return Err(Error::invalid(
                "buffers",
                format!("{op} was given the same buffer twice, once to write into; pass distinct buffers"),
            ));
        }
    }
    Ok(())
}

/// The host's `len` elements at `p`: an empty slice when `len` is 0 (the pointer may then be
/// NULL), an error for NULL, a misaligned pointer or a length no slice can have.
fn host_slice<'a, E>(p: *const c_void, len: usize) -> Result<&'a [E]> {
    host_ptr::<E>(p, len)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-null, aligned and of a valid length (checked above); the host passes `len`
    // elements of the call's type that stay valid for the call.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<E>(), len) })
}

/// As [`host_slice`], writable.
fn host_slice_mut<'a, E>(p: *mut c_void, len: usize) -> Result<&'a mut [E]> {
    host_ptr::<E>(p, len)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `host_slice`; the host gives room for `len` elements, used by this call only.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<E>(), len) })
}

fn host_ptr<E>(p: *const c_void, len: usize) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    if p.is_null() {
        return Err(Error::invalid("host pointer", format!("NULL for {len} elements")));
    }
    if !p.cast::<E>().is_aligned() {
        return Err(Error::invalid("host pointer", "not aligned for the element type"));
    }
    if len.checked_mul(std::mem::size_of::<E>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(Error::invalid("length", format!("{len} elements exceed the address space")));
    }
    Ok(())
}

/// Runs `f`, turning an error or a panic into `ERROR` with the message stored for `last_error`.
fn run<B: Exportable>(c: *mut Context, f: impl FnOnce(&ExportCtx<B>) -> Result<()>) -> Status {
    let cx = ctx::<B>(c);
    let outcome = catch_unwind(AssertUnwindSafe(|| f(cx)));
    let message = match outcome {
        Ok(Ok(())) => return abi::OK,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the plugin panicked".to_string(),
    };
    *cx.last_error.borrow_mut() = CString::new(message.replace('\0', " ")).unwrap_or_default();
    abi::ERROR
}

/// Runs `$body` with `$E` the element type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $E:ident => $body:expr) => {
        match $dtype {
            abi::F32 => {
                type $E = f32;
                $body
            }
            abi::F64 => {
                type $E = f64;
                $body
            }
            d => Err(Error::invalid("dtype", format!("code {d}"))),
        }
    };
}

fn activation(code: u32, alpha: f64) -> Result<Activation> {
    Activation::from_code(code, alpha).ok_or_else(|| Error::invalid("activation", format!("code {code}")))
}

/// Reports exactly the codes [`Activation::from_code`], [`Loss::from_code`] and
/// [`Rule::from_code`] know, so that the host never sends one the ops would refuse.
unsafe extern "C" fn supports(_: *mut Context, op: u32, dtype: u32, variant: u32) -> i32 {
    let Some(&op) = Op::ALL.iter().find(|o| **o as u32 == op) else { return 0 };
    let known = match op {
        Op::Activate | Op::ActivateGrad => Activation::from_code(variant, 0.0).is_some(),
        Op::Loss => Loss::from_code(variant, 0.0).is_some(),
        Op::Update => Rule::from_code(variant, [0.0; 4]).is_some(),
        _ => variant == 0,
    };
    i32::from(known && dtype <= abi::F64)
}

unsafe extern "C" fn last_error<B: Exportable>(c: *mut Context) -> *const c_char {
    ctx::<B>(c).last_error.borrow().as_ptr()
}

unsafe extern "C" fn destroy<B: Exportable>(c: *mut Context) {
    // SAFETY: `c` came from `Box::into_raw` in `entry`; the host calls destroy once.
    drop(unsafe { Box::from_raw(c.cast::<ExportCtx<B>>()) });
}

unsafe extern "C" fn alloc<B: Exportable>(c: *mut Context, dtype: u32, len: usize, out: *mut *mut Buffer) -> Status {
    run::<B>(c, |cx| {
        let b: ExportBuf<B> = by_dtype!(dtype, E => Ok(E::wrap::<B>(Backend::<E>::alloc(&cx.backend, len)?)))?;
        // SAFETY: `out` is the host's out-pointer.
        unsafe { *out = Box::into_raw(Box::new(b)).cast::<Buffer>() };
        Ok(())
    })
}

unsafe extern "C" fn free_buffer<B: Exportable>(_: *mut Context, b: *mut Buffer) {
    if !b.is_null() {
        // SAFETY: `b` came from `alloc` and is freed once.
        drop(unsafe { Box::from_raw(b.cast::<ExportBuf<B>>()) });
    }
}

unsafe extern "C" fn write<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    host: *const c_void,
    len: usize,
    b: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        by_dtype!(dtype, E => {
            Backend::<E>::write(&cx.backend, host_slice::<E>(host, len)?, buf_mut::<B, E>(b)?)
        })
    })
}

unsafe extern "C" fn read<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    b: *const Buffer,
    host: *mut c_void,
    len: usize,
) -> Status {
    run::<B>(c, |cx| {
        by_dtype!(dtype, E => {
            Backend::<E>::download(&cx.backend, buf::<B, E>(b)?, host_slice_mut::<E>(host, len)?)
        })
    })
}

unsafe extern "C" fn synchronize<B: Exportable>(c: *mut Context) -> Status {
    run::<B>(c, |cx| Backend::<f32>::synchronize(&cx.backend))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn gemm<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    ta: u32,
    tb: u32,
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: *const Buffer,
    b: *const Buffer,
    beta: f64,
    out: *mut Buffer,
) -> Status {
    let t = |x: u32| if x != 0 { Trans::Yes } else { Trans::No };
    let s = Gemm { ta: t(ta), tb: t(tb), m, n, k };
    run::<B>(c, |cx| {
        unaliased("gemm", &[out], &[a, b])?;
        by_dtype!(dtype, E => cx.backend.gemm(s, E::of(alpha), buf::<B, E>(a)?, buf::<B, E>(b)?, E::of(beta), buf_mut::<B, E>(out)?))
    })
}

unsafe extern "C" fn hadamard<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    len: usize,
    x: *const Buffer,
    y: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        unaliased("hadamard", &[y], &[x])?;
        by_dtype!(dtype, E => Backend::<E>::hadamard(&cx.backend, len, buf::<B, E>(x)?, buf_mut::<B, E>(y)?))
    })
}

unsafe extern "C" fn copy<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    len: usize,
    x: *const Buffer,
    y: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        unaliased("copy", &[y], &[x])?;
        by_dtype!(dtype, E => Backend::<E>::copy(&cx.backend, len, buf::<B, E>(x)?, buf_mut::<B, E>(y)?))
    })
}

unsafe extern "C" fn bias_add<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    rows: usize,
    cols: usize,
    bias: *const Buffer,
    z: *mut Buffer,
) -> Status {
    let d = Dims::new(rows, cols);
    run::<B>(c, |cx| {
        unaliased("bias_add", &[z], &[bias])?;
        by_dtype!(dtype, E => Backend::<E>::bias_add(&cx.backend, d, buf::<B, E>(bias)?, buf_mut::<B, E>(z)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn activate<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    act: u32,
    alpha: f64,
    rows: usize,
    cols: usize,
    z: *const Buffer,
    a: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        let f = activation(act, alpha)?;
        unaliased("activate", &[a], &[z])?;
        by_dtype!(dtype, E => Backend::<E>::activate(&cx.backend, f, Dims::new(rows, cols), buf::<B, E>(z)?, buf_mut::<B, E>(a)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn bias_add_activate<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    act: u32,
    alpha: f64,
    rows: usize,
    cols: usize,
    bias: *const Buffer,
    z: *mut Buffer,
    a: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        let f = activation(act, alpha)?;
        let d = Dims::new(rows, cols);
        unaliased("bias_add_activate", &[z, a], &[bias])?;
        by_dtype!(dtype, E => Backend::<E>::bias_add_activate(&cx.backend, f, d, buf::<B, E>(bias)?, buf_mut::<B, E>(z)?, buf_mut::<B, E>(a)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn activate_grad<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    act: u32,
    alpha: f64,
    rows: usize,
    cols: usize,
    z: *const Buffer,
    a: *const Buffer,
    delta: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        let f = activation(act, alpha)?;
        let d = Dims::new(rows, cols);
        unaliased("activate_grad", &[delta], &[z, a])?;
        by_dtype!(dtype, E => Backend::<E>::activate_grad(&cx.backend, f, d, buf::<B, E>(z)?, buf::<B, E>(a)?, buf_mut::<B, E>(delta)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn sum_rows<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    rows: usize,
    cols: usize,
    alpha: f64,
    x: *const Buffer,
    beta: f64,
    out: *mut Buffer,
) -> Status {
    let d = Dims::new(rows, cols);
    run::<B>(c, |cx| {
        unaliased("sum_rows", &[out], &[x])?;
        by_dtype!(dtype, E => cx.backend.sum_rows(d, E::of(alpha), buf::<B, E>(x)?, E::of(beta), buf_mut::<B, E>(out)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn loss<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    code: u32,
    param: f64,
    rows: usize,
    cols: usize,
    out: *const Buffer,
    target: *const Buffer,
    grad: *mut Buffer,
    stats: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        let l = Loss::from_code(code, param).ok_or_else(|| Error::invalid("loss", format!("code {code}")))?;
        let d = Dims::new(rows, cols);
        unaliased("loss", &[grad, stats], &[out, target])?;
        by_dtype!(dtype, E => Backend::<E>::loss(&cx.backend, l, d, buf::<B, E>(out)?, buf::<B, E>(target)?, buf_mut::<B, E>(grad)?, buf_mut::<B, E>(stats)?))
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn update<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    u: *const UpdateDesc,
    len: usize,
    w: *mut Buffer,
    g: *const Buffer,
    s0: *mut Buffer,
    s1: *mut Buffer,
) -> Status {
    run::<B>(c, |cx| {
        // SAFETY: the host passes a valid descriptor.
        let u = unsafe { u.as_ref() }.ok_or_else(|| Error::invalid("update", "NULL descriptor"))?;
        let rule = Rule::from_code(u.rule, u.p).ok_or_else(|| Error::invalid("rule", format!("code {}", u.rule)))?;
        let update = Update { rule, lr: u.lr, t: u.t, l2: u.l2, decay: u.decay };
        let written = [w.cast_const(), s0.cast_const(), s1.cast_const()];
        unaliased("update", &written[..1 + rule.state_count()], &[g])?;
        by_dtype!(dtype, E => {
            let (w, g) = (buf_mut::<B, E>(w)?, buf::<B, E>(g)?);
            let mut state = [s0, s1]
                .into_iter()
                .take(rule.state_count())
                .map(buf_mut::<B, E>)
                .collect::<Result<Vec<_>>>()?;
            Backend::<E>::update(&cx.backend, &update, len, w, g, &mut state)
        })
    })
}

unsafe extern "C" fn dropout_mask<B: Exportable>(
    c: *mut Context,
    dtype: u32,
    len: usize,
    rate: f64,
    seed: u64,
    mask: *mut Buffer,
) -> Status {
    run::<B>(
        c,
        |cx| by_dtype!(dtype, E => Backend::<E>::dropout_mask(&cx.backend, len, rate, seed, 0, buf_mut::<B, E>(mask)?)),
    )
}

/// The body of a Rust plugin's `nabla_plugin_entry`: builds the backend with `make` and returns
/// its table, or NULL if the host speaks another ABI version or `make` fails.
pub fn entry<B: Exportable>(host_version: u32, name: &str, make: impl FnOnce() -> Result<B>) -> *const BackendV2 {
    if host_version != abi::ABI_VERSION {
        return std::ptr::null();
    }
    let Ok(Ok(backend)) = catch_unwind(AssertUnwindSafe(make)) else { return std::ptr::null() };
    let name = CString::new(name.replace('\0', " ")).unwrap_or_default();
    let table = BackendV2 {
        abi_version: abi::ABI_VERSION,
        struct_size: std::mem::size_of::<BackendV2>() as u32,
        name: std::ptr::null(),
        ctx: std::ptr::null_mut(),
        supports: Some(supports),
        last_error: Some(last_error::<B>),
        destroy: Some(destroy::<B>),
        alloc: Some(alloc::<B>),
        free_buffer: Some(free_buffer::<B>),
        write: Some(write::<B>),
        read: Some(read::<B>),
        synchronize: Some(synchronize::<B>),
        gemm: Some(gemm::<B>),
        hadamard: Some(hadamard::<B>),
        copy: Some(copy::<B>),
        bias_add: Some(bias_add::<B>),
        activate: Some(activate::<B>),
        bias_add_activate: Some(bias_add_activate::<B>),
        activate_grad: Some(activate_grad::<B>),
        sum_rows: Some(sum_rows::<B>),
        loss: Some(loss::<B>),
        update: Some(update::<B>),
        dropout_mask: Some(dropout_mask::<B>),
    };
    let cx = Box::into_raw(Box::new(ExportCtx { table, backend, name, last_error: RefCell::new(CString::default()) }));
    // SAFETY: `cx` was just allocated; the table points back at its own context.
    unsafe {
        (*cx).table.ctx = cx.cast::<Context>();
        (*cx).table.name = (*cx).name.as_ptr();
        &(*cx).table
    }
}

/// Exports a backend as a nabla plugin: defines `nabla_plugin_entry`. Use it once, in a
/// `cdylib` crate: `nabla_plugin::export_plugin!("my-backend", MyBackend::new());` where the
/// expression gives a `nabla_core::Result<B>` and `B: Backend<f32> + Backend<f64>`.
#[macro_export]
macro_rules! export_plugin {
    ($name:expr, $make:expr) => {
        /// The nabla plugin entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn nabla_plugin_entry(host_abi_version: u32) -> *const $crate::abi::BackendV2 {
            $crate::export::entry(host_abi_version, $name, || $make)
        }
    };
}
