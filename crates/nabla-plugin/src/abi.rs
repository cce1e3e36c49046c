//! The `#[repr(C)]` mirror of `include/nabla_plugin.h` (kept in sync by a test that compiles
//! the header and compares every field's offset).

use std::ffi::{c_char, c_void};

use nabla_core::{Activation, Loss, Rule};

/// The ABI version this host speaks.
pub const ABI_VERSION: u32 = 2;
/// The exported entry symbol.
pub const ENTRY: &[u8] = b"nabla_plugin_entry\0";
/// Success.
pub const OK: i32 = 0;
/// Failure (the message is at `last_error`).
pub const ERROR: i32 = 1;

/// The element type code of `f32` (`NABLA_F32`).
pub const F32: u32 = 0;
/// The element type code of `f64` (`NABLA_F64`).
pub const F64: u32 = 1;

/// Operation codes for `supports`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `gemm`: `C ← α op(A) op(B) + β C`.
    Gemm = 0,
    /// `hadamard`: `y ← x ⊙ y`.
    Hadamard = 1,
    // 2 was `axpy` (ABI version 1); its code is not reused.
    /// `copy`: `y ← x`.
    Copy = 3,
    /// `bias_add`: `Z ← Z ⊕ b`.
    BiasAdd = 4,
    /// `activate` (and `bias_add_activate`): `A ← σ(Z)`; variants are activation codes.
    Activate = 5,
    /// `activate_grad`: `δ ← δ ⊙ σ'(Z)`; variants are activation codes.
    ActivateGrad = 6,
    /// `sum_rows`: `out ← α Σ_rows X + β out`.
    SumRows = 7,
    /// `loss`: the batch loss and output error; variants are loss codes.
    Loss = 8,
    /// `update`: one optimizer step; variants are update-rule codes.
    Update = 9,
    /// `dropout_mask`: the counter-based mask.
    DropoutMask = 10,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 10] = [
        Op::Gemm,
        Op::Hadamard,
        Op::Copy,
        Op::BiasAdd,
        Op::Activate,
        Op::ActivateGrad,
        Op::SumRows,
        Op::Loss,
        Op::Update,
        Op::DropoutMask,
    ];

    /// The number of variants the op has (activations, losses, rules; 1 for the others): the
    /// codes the Rust enums define, counted from 0 (so a new variant needs no edit here).
    pub fn variants(self) -> u32 {
        let count = |known: &dyn Fn(u32) -> bool| (0..).take_while(|&c| known(c)).count() as u32;
        match self {
            Op::Activate | Op::ActivateGrad => count(&|c| Activation::from_code(c, 0.0).is_some()),
            Op::Loss => count(&|c| Loss::from_code(c, 0.0).is_some()),
            Op::Update => count(&|c| Rule::from_code(c, [0.0; 4]).is_some()),
            _ => 1,
        }
    }

    /// The op's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Gemm => "gemm",
            Op::Hadamard => "hadamard",
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
#[derive(Debug)]
pub struct Context {
    _private: [u8; 0],
}

/// Opaque plugin buffer.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    _private: [u8; 0],
}

/// `nabla_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateDesc {
    /// The update-rule code.
    pub rule: u32,
    /// Zero (padding).
    pub reserved: u32,
    /// The 1-based step count.
    pub t: u64,
    /// The learning rate η of this step.
    pub lr: f64,
    /// Coupled L2 coefficient λ₂: `g ← g + λ₂ w` first.
    pub l2: f64,
    /// Decoupled weight decay λ: `w ← w (1 − η λ)` first.
    pub decay: f64,
    /// The rule's hyper-parameters (`Rule::params`).
    pub p: [f64; 4],
    /// Adam: `1 − β₁ᵗ`.
    pub c1: f64,
    /// Adam: `1 − β₂ᵗ`.
    pub c2: f64,
}

/// `nabla_status`.
pub type Status = i32;
type Ctx = *mut Context;
type Buf = *mut Buffer;
type CBuf = *const Buffer;

/// `nabla_backend_v2`: the table a plugin's entry returns.
#[repr(C)]
#[derive(Debug)]
pub struct BackendV2 {
    /// `NABLA_PLUGIN_ABI_VERSION` of the header the plugin was built with.
    pub abi_version: u32,
    /// `sizeof(nabla_backend_v2)` as the plugin sees it.
    pub struct_size: u32,
    /// A short name for messages (NUL-terminated).
    pub name: *const c_char,
    /// The plugin's state, passed back to every function.
    pub ctx: Ctx,
    /// 1 if an op works for a dtype and variant.
    pub supports: Option<unsafe extern "C" fn(Ctx, u32, u32, u32) -> i32>,
    /// The message of the last error on the calling thread.
    pub last_error: Option<unsafe extern "C" fn(Ctx) -> *const c_char>,
    /// Frees the context; no call follows.
    pub destroy: Option<unsafe extern "C" fn(Ctx)>,
    /// A zero-filled buffer of `len` elements.
    pub alloc: Option<unsafe extern "C" fn(Ctx, u32, usize, *mut Buf) -> Status>,
    /// Frees a buffer.
    pub free_buffer: Option<unsafe extern "C" fn(Ctx, Buf)>,
    /// Copies host elements into a buffer's first elements.
    pub write: Option<unsafe extern "C" fn(Ctx, u32, *const c_void, usize, Buf) -> Status>,
    /// Copies a buffer's first elements to the host.
    pub read: Option<unsafe extern "C" fn(Ctx, u32, CBuf, *mut c_void, usize) -> Status>,
    /// Waits for queued work.
    pub synchronize: Option<unsafe extern "C" fn(Ctx) -> Status>,
    /// `C ← α op(A) op(B) + β C`.
    #[allow(clippy::type_complexity)]
    pub gemm:
        Option<unsafe extern "C" fn(Ctx, u32, u32, u32, usize, usize, usize, f64, CBuf, CBuf, f64, Buf) -> Status>,
    /// `y ← x ⊙ y`.
    pub hadamard: Option<unsafe extern "C" fn(Ctx, u32, usize, CBuf, Buf) -> Status>,
    /// `dst ← src` (optional).
    pub copy: Option<unsafe extern "C" fn(Ctx, u32, usize, CBuf, Buf) -> Status>,
    /// `z[r, c] ← z[r, c] + bias[c]`.
    pub bias_add: Option<unsafe extern "C" fn(Ctx, u32, usize, usize, CBuf, Buf) -> Status>,
    /// `a ← σ(z)`.
    pub activate: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, Buf) -> Status>,
    /// `z ← z + bias`, `a ← σ(z)` (optional).
    #[allow(clippy::type_complexity)]
    pub bias_add_activate: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, Buf, Buf) -> Status>,
    /// `δ ← δ ⊙ σ'(z)`.
    #[allow(clippy::type_complexity)]
    pub activate_grad: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, CBuf, Buf) -> Status>,
    /// `out[c] ← α Σ_r x[r, c] + β out[c]`.
    pub sum_rows: Option<unsafe extern "C" fn(Ctx, u32, usize, usize, f64, CBuf, f64, Buf) -> Status>,
    /// The batch loss, correct count and output error.
    #[allow(clippy::type_complexity)]
    pub loss: Option<unsafe extern "C" fn(Ctx, u32, u32, f64, usize, usize, CBuf, CBuf, Buf, Buf) -> Status>,
    /// One optimizer step over `len` elements.
    pub update: Option<unsafe extern "C" fn(Ctx, u32, *const UpdateDesc, usize, Buf, CBuf, Buf, Buf) -> Status>,
    /// The dropout mask.
    pub dropout_mask: Option<unsafe extern "C" fn(Ctx, u32, usize, f64, u64, Buf) -> Status>,
}

/// The entry point's type.
pub type EntryFn = unsafe extern "C" fn(u32) -> *const BackendV2;

/// The field names of [`BackendV2`] in declaration order, with their offsets (for the
/// header-sync test and for messages naming a null function).
pub fn field_offsets() -> Vec<(&'static str, usize)> {
    use std::mem::offset_of;
    macro_rules! offsets {
        ($($f:ident),*) => { vec![$((stringify!($f), offset_of!(BackendV2, $f))),*] };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `#define NAME value` lines of the C headers (the ABI's and the generated codes').
    fn defines() -> Vec<(String, String)> {
        [crate::HEADER.to_string(), crate::codes_header()]
            .concat()
            .lines()
            .filter_map(|l| l.strip_prefix("#define "))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect()
    }

    fn define(name: &str) -> Option<String> {
        defines().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[track_caller]
    fn assert_code(name: &str, code: u32) {
        assert_eq!(define(name), Some(code.to_string()), "nabla_plugin.h: `{name}` is not {code}, its Rust code");
    }

    /// Every activation, loss and rule code of the Rust enums has its `NABLA_*` define in the C
    /// headers with the same number (names from the enums' exhaustive `code_name`), and the
    /// headers' counts are the enums'; `nabla_plugin.h` itself defines no code (it includes
    /// the generated `nabla_plugin_codes.h`).
    #[test]
    fn header_codes_match_the_rust_enums() {
        for f in (0..Op::Activate.variants()).filter_map(|c| Activation::from_code(c, 0.1)) {
            assert_code(&format!("NABLA_ACT_{}", f.code_name()), f.code());
        }
        for l in (0..Op::Loss.variants()).filter_map(|c| Loss::from_code(c, 1.0)) {
            assert_code(&format!("NABLA_LOSS_{}", l.code_name()), l.code());
        }
        for r in (0..Op::Update.variants()).filter_map(|c| Rule::from_code(c, [0.5; 4])) {
            assert_code(&format!("NABLA_RULE_{}", r.code_name()), r.code());
        }
        assert_code("NABLA_ACT_COUNT", Op::Activate.variants());
        assert_code("NABLA_LOSS_COUNT", Op::Loss.variants());
        assert_code("NABLA_RULE_COUNT", Op::Update.variants());
        // No code in the header that Rust does not know.
        for (prefix, op) in [("NABLA_ACT_", Op::Activate), ("NABLA_LOSS_", Op::Loss), ("NABLA_RULE_", Op::Update)] {
            let codes = defines().iter().filter(|(n, _)| n.starts_with(prefix) && !n.ends_with("_COUNT")).count();
            assert_eq!(codes as u32, op.variants(), "the headers define {codes} {prefix}* codes");
            assert!(!crate::HEADER.contains(&format!("#define {prefix}")), "nabla_plugin.h keeps {prefix}* by hand");
        }
        assert!(crate::HEADER.contains(&format!("#include \"{}\"", crate::CODES_HEADER)));
    }
}
