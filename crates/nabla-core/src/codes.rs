//! The stable integer codes of activations, losses and update rules, as C preprocessor
//! definitions generated from the Rust enums ([`Activation::ALL`], [`Loss::ALL`], [`Rule::ALL`]
//! with their `code` and `code_name`): the plugin header's `nabla_plugin_codes.h` and the CUDA
//! kernels' prelude are this text, so no code is kept by hand in C or CUDA.

use std::fmt::Write;

use crate::{Activation, Loss, Rule};

/// One code: its name after the prefix (`ACT_SILU`), its number and a short comment.
struct Code {
    name: String,
    code: u32,
    comment: String,
}

/// The CLI name of a value whose `Display` may carry a parameter (`leaky-relu:0.1` → `leaky-relu`).
fn cli_name(shown: impl std::fmt::Display) -> String {
    let shown = shown.to_string();
    shown.split(':').next().unwrap_or_default().to_string()
}

fn activations() -> impl Iterator<Item = Code> {
    Activation::ALL.into_iter().map(|f| {
        let mut comment = cli_name(f);
        if matches!(f, Activation::LeakyRelu { .. } | Activation::Elu { .. }) {
            comment.push_str(", parameter alpha");
        }
        if f.is_row_wise() {
            comment.push_str(", row-wise");
        }
        Code { name: format!("ACT_{}", f.code_name()), code: f.code(), comment }
    })
}

fn losses() -> impl Iterator<Item = Code> {
    Loss::ALL.into_iter().map(|l| {
        let mut comment = cli_name(l);
        if matches!(l, Loss::Huber { .. }) {
            comment.push_str(", parameter delta");
        }
        if let Some(f) = l.fused_activation() {
            comment.push_str(&format!(", on logits (fused with {f})"));
        }
        Code { name: format!("LOSS_{}", l.code_name()), code: l.code(), comment }
    })
}

fn rules() -> impl Iterator<Item = Code> {
    Rule::ALL.into_iter().map(|r| {
        let params: Vec<String> = r.param_names().iter().enumerate().map(|(i, p)| format!("p[{i}] = {p}")).collect();
        let mut comment = r.code_name().to_ascii_lowercase();
        if !params.is_empty() {
            comment = format!("{comment}: {}", params.join(", "));
        }
        Code { name: format!("RULE_{}", r.code_name()), code: r.code(), comment }
    })
}

/// `#define {prefix}ACT_… n` for every activation, then the losses and the rules, each group
/// with its `{prefix}…_COUNT`; e.g. `c_defines("NABLA_")` for the plugin header and
/// `c_defines("")` for kernels.cu.
pub fn c_defines(prefix: &str) -> String {
    let groups: [(&str, &str, Vec<Code>); 3] = [
        ("Activation codes (the variant of ACTIVATE and ACTIVATE_GRAD)", "ACT", activations().collect()),
        ("Loss codes (the variant of LOSS)", "LOSS", losses().collect()),
        ("Update rule codes (the variant of UPDATE)", "RULE", rules().collect()),
    ];
    let mut out = String::new();
    for (title, group, codes) in groups {
        let _ = writeln!(out, "/* {title}. */");
        for c in &codes {
            let _ = writeln!(out, "#define {prefix}{} {} /* {} */", c.name, c.code, c.comment);
        }
        let _ = writeln!(out, "#define {prefix}{group}_COUNT {}\n", codes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes of each enum are 0, 1, 2, … in the order of its `ALL` (so a `_COUNT` bounds
    /// them), their names are distinct, and `from_code` inverts `code` on every one of them and
    /// on nothing past the count.
    #[test]
    fn every_group_is_numbered_densely_and_inverts() {
        for group in [activations().collect::<Vec<_>>(), losses().collect(), rules().collect()] {
            let codes: Vec<u32> = group.iter().map(|c| c.code).collect();
            assert_eq!(codes, (0..group.len() as u32).collect::<Vec<_>>());
            let mut names: Vec<&str> = group.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), group.len());
        }
        for f in Activation::ALL {
            assert_eq!(Activation::from_code(f.code(), f.alpha()), Some(f));
        }
        for l in Loss::ALL {
            assert_eq!(Loss::from_code(l.code(), l.param()), Some(l));
        }
        for r in Rule::ALL {
            assert_eq!(Rule::from_code(r.code(), r.params()), Some(r));
        }
        assert_eq!(Activation::from_code(Activation::ALL.len() as u32, 0.0), None);
        assert_eq!(Loss::from_code(Loss::ALL.len() as u32, 0.0), None);
        assert_eq!(Rule::from_code(Rule::ALL.len() as u32, [0.0; 4]), None);
    }

    #[test]
    fn the_defines_read_as_c() {
        let text = c_defines("NABLA_");
        assert!(text.contains("#define NABLA_ACT_SILU 11 /* silu */\n"), "{text}");
        assert!(text.contains("#define NABLA_ACT_LEAKY_RELU 4 /* leaky-relu, parameter alpha */\n"), "{text}");
        assert!(text.contains("#define NABLA_LOSS_BCE 3 /* bce, on logits (fused with sigmoid) */\n"), "{text}");
        assert!(text.contains("#define NABLA_RULE_ADAM 5 /* adam: p[0] = beta1, p[1] = beta2, p[2] = eps */\n"));
        assert!(text.contains(&format!("#define NABLA_ACT_COUNT {}\n", Activation::ALL.len())));
        assert!(c_defines("").contains("#define RULE_SGD 0 /* sgd */\n"));
    }
}
