//! The `#[repr(C)]` mirror of `include/nabla_plugin.h` (kept in sync by a test that compiles
//! the header and compares every field's offset).

use std::ffi::{c_char, c_void};

/// The ABI version this host speaks.
pub const ABI_VERSION: u32 = 1;
/// The exported entry symbol.
pub const ENTRY: &[u8] = b"nabla_plugin_entry\0";
/// Success.
pub const OK: i32 = 0;
/// Failure (the message is at `last_error`).
pub const ERROR: i32 = 1;

/// Element type codes.
pub const F32: u32 = 0;
pub const F64: u32 = 1;

/// Operation codes for `supports`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gemm = 0,
    Hadamard = 1,
    Axpy = 2,
    Copy = 3,
    BiasAdd = 4,
    Activate = 5,
    ActivateGrad = 6,
    SumRows = 7,
    Loss = 8,
    Update = 9,
    DropoutMask = 10,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 11] = [
        Op::Gemm,
        Op::Hadamard,
        Op::Axpy,
        Op::Copy,
        Op::BiasAdd,
        Op::Activate,
        Op::ActivateGrad,
        Op::SumRows,
        Op::Loss,
        Op::Update,
        Op::DropoutMask,
    ];

    /// The number of variants the op has (activations, losses, rules; 1 for the others).
    pub fn variants(self) -> u32 {
        match self {
            Op::Activate | Op::ActivateGrad => 11,
            Op::Loss => 5,
            Op::Update => 7,
            _ => 1,
        }
    }

    /// The op's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Gemm => "gemm",
            Op::Hadamard => "hadamard",
            Op::Axpy => "axpy",
            Op::Copy => "copy",
            Op::BiasAdd => "bias_add",
            Op::Activate => "activate",
            Op::ActivateGrad => "activate_grad",
            Op::SumRows => "sum_rows",
            Op::Loss => "loss",
            Op::Update => "update",
            Op::DropoutMask => "dropout_mask",
        }
    }
}

/// Opaque plugin state.
#[repr(C)]
pub struct Context {
    _private: [u8; 0],
}

/// Opaque plugin buffer.
#[repr(C)]
pub struct Buffer {
    _private: [u8; 0],
}

/// `nabla_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateDesc {
    pub rule: u32,
    pub reserved: u32,
    pub t: u64,
    pub lr: f64,
    pub l2: f64,
    pub decay: f64,
    pub p: [f64; 4],
    pub c1: f64,
    pub c2: f64,
}

/// `nabla_status`.
pub type Status = i32;
type Ctx = *mut Context;
type Buf = *mut Buffer;
type CBuf = *const Buffer;

/// `nabla_backend_v1`: the table a plugin's entry returns.
#[repr(C)]
pub struct BackendV1 {
    pub abi_version: u32,
    pub struct_size: u32,
    pub name: *const c_char,
    pub ctx: Ctx,
    pub supports: Option<unsafe extern "C" fn(Ctx, u32, u32, u32) -> i32>,
    pub last_error: Option<unsafe extern "C" fn(Ctx) -> *const c_char>,
    pub destroy: Option<unsafe extern "C" fn(Ctx)>,
    pub alloc: Option<unsafe extern "C" fn(Ctx, u32, usize, *mut Buf) -> Status>,
    pub free_buffer: Option<unsafe extern "C" fn(Ctx, Buf)>,
    pub write: Option<unsafe extern "C" fn(Ctx, u32, *const c_void, usize, Buf) -> Status>,
    pub read: Option<unsafe extern "C" fn(Ctx, u32, CBuf, *mut c_void, usize) -> Status>,
    pub synchronize: Option<unsafe extern "C" fn(Ctx) -> Status>,
    #[allow(clippy::type_complexity)]
    pub gemm:
        Option<unsafe extern "C" fn(Ctx, u32, u32, u32, usize, usize, usize, f64, CBuf, CBuf, f64, Buf) -> Status>,
    pub hadamard: Option<unsafe extern "C" fn(Ctx, u32, usize, CBuf, Buf) -> Status>,
    pub axpy: Option<unsafe extern "C" fn(Ctx, u32, usize, f64, CBuf, Buf) -> Status>,
    pub copy: Option<unsafe extern "C" fn(Ctx, u32, usize, CBuf, Buf) -> Status>,
    pub bias_add: Option<unsafe extern "C" fn(Ctx, u32, usize, usize, CBuf, Buf) -> Status>,
    pub activate: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, Buf) -> Status>,
    #[allow(clippy::type_complexity)]
    pub bias_add_activate: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, Buf, Buf) -> Status>,
    #[allow(clippy::type_complexity)]
    pub activate_grad: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, CBuf, Buf) -> Status>,
    pub sum_rows: Option<unsafe extern "C" fn(Ctx, u32, usize, usize, f64, CBuf, f64, Buf) -> Status>,
    #[allow(clippy::type_complexity)]
    pub loss: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, CBuf, Buf, Buf) -> Status>,
    pub update: Option<unsafe extern "C" fn(Ctx, u32, *const UpdateDesc, usize, Buf, CBuf, Buf, Buf) -> Status>,
    pub dropout_mask: Option<unsafe extern "C" fn(Ctx, u32, usize, f64, u64, Buf) -> Status>,
}

/// The entry point's type.
pub type EntryFn = unsafe extern "C" fn(u32) -> *const BackendV1;

/// The field names of [`BackendV1`] in declaration order, with their offsets (for the
/// header-sync test and for messages naming a null function).
pub fn field_offsets() -> Vec<(&'static str, usize)> {
    use std::mem::offset_of;
    macro_rules! offsets {
        ($($f:ident),*) => { vec![$((stringify!($f), offset_of!(BackendV1, $f))),*] };
    }
    offsets!(
        abi_version,
        struct_size,
        name,
        ctx,
        supports,
        last_error,
        destroy,
        alloc,
        free_buffer,
        write,
        read,
        synchronize,
        gemm,
        hadamard,
        axpy,
        copy,
        bias_add,
        activate,
        bias_add_activate,
        activate_grad,
        sum_rows,
        loss,
        update,
        dropout_mask
    )
}
