//! The `.npy` loader: files written by hand, and one test per kind of bad input.

use std::path::{Path, PathBuf};

use nabla_data::csv::TargetKind;
use nabla_data::npy::{self, NpyArray};
use nabla_data::{DataError, Targets};

/// A `.npy` file of format `version` with header dict `dict` (padded as NumPy pads it) and `data`.
fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.to_string();
    while !(prefix + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(&[version, 0]);
    if version == 1 {
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn dict(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

fn f4(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f4_file(shape: &str, values: &[f32]) -> Vec<u8> {
    npy_bytes(1, &dict("<f4", shape), &f4(values))
}

/// Asserts that `r` is a Format error whose message contains every one of `parts`.
#[track_caller]
fn format_error<T: std::fmt::Debug>(r: nabla_data::Result<T>, parts: &[&str]) {
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    for p in parts {
        assert!(m.contains(p), "`{p}` not in: {m}");
    }
}

#[test]
fn reads_every_dtype_and_version() {
    let a = npy::parse(&f4_file("(2, 3)", &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]), "a.npy").unwrap();
    assert_eq!(a, NpyArray { shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5] });
    let f8: Vec<u8> = [0.1f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(npy::parse(&npy_bytes(2, &dict("<f8", "(2,)"), &f8), "b").unwrap().data, [0.1, -2.0]);
    for descr in ["|u1", "<u1", "u1"] {
        let a = npy::parse(&npy_bytes(3, &dict(descr, "(3,)"), &[0, 7, 255]), "c").unwrap();
        assert_eq!(a, NpyArray { shape: vec![3], data: vec![0.0, 7.0, 255.0] }, "{descr}");
    }
    let i4: Vec<u8> = [-3i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(npy::parse(&npy_bytes(1, &dict("<i4", "(1, 2)"), &i4), "d").unwrap().data, [-3.0, 9.0]);
    let i8: Vec<u8> = [-1i64, 1 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(npy::parse(&npy_bytes(1, &dict("<i8", "(2L,)"), &i8), "e").unwrap().data, [-1.0, (1u64 << 40) as f64]);
    let scalar = npy::parse(&f4_file("()", &[4.0]), "s").unwrap();
    assert_eq!(scalar, NpyArray { shape: vec![], data: vec![4.0] });
    let spaced = npy_bytes(1, "{\"shape\":(0,4),\"fortran_order\":False,\"descr\":\"<f4\"}", &[]);
    assert_eq!(npy::parse(&spaced, "f").unwrap().shape, [0, 4]);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn loads_features_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "train_x.npy", &f4_file("(3, 2)", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let y = write(dir.path(), "train_y.npy", &npy_bytes(1, &dict("|u1", "(3,)"), &[2, 0, 1]));
    let d = npy::load(&x, &y, TargetKind::Auto).unwrap();
    assert_eq!(d.name, "train_x");
    assert_eq!(d.features, ndarray::array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    assert_eq!(d.targets, Targets::Classes { labels: vec![2, 0, 1], classes: 3 });
    assert!(matches!(npy::load(&x, &y, TargetKind::Values).unwrap().targets, Targets::Values(_)));

    let x1 = write(dir.path(), "x1.npy", &f4_file("(3,)", &[1.0, 2.0, 3.0]));
    let y2 = write(dir.path(), "y2.npy", &f4_file("(3, 2)", &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]));
    let d = npy::load(&x1, &y2, TargetKind::Auto).unwrap();
    assert_eq!((d.len(), d.features_per_sample()), (3, 1));
    assert!(matches!(d.targets, Targets::Values(ref v) if v.dim() == (3, 2)));
    format_error(npy::load(&x1, &y2, TargetKind::Classes), &["y2.npy", "shape (3, 2) are values", "1-D"]);
    let col = write(dir.path(), "col.npy", &f4_file("(3, 1)", &[1.0, 0.0, 1.0]));
    assert_eq!(
        npy::load(&x1, &col, TargetKind::Classes).unwrap().targets,
        Targets::Classes { labels: vec![1, 0, 1], classes: 2 }
    );
}

#[test]
fn bad_magic_is_an_error() {
    format_error(npy::parse(b"PK\x03\x04 not npy at all", "z.npy"), &["z.npy: bad magic", "not a .npy file"]);
    format_error(npy::parse(b"\x93NUM", "z.npy"), &["truncated"]);
    format_error(npy::parse(b"", "z.npy"), &["truncated"]);
    let mut v4 = f4_file("(1,)", &[1.0]);
    v4[6] = 4;
    format_error(npy::parse(&v4, "z.npy"), &["format version 4.0 is not supported"]);
}

#[test]
fn truncated_header_is_an_error() {
    let full = f4_file("(2,)", &[1.0, 2.0]);
    format_error(npy::parse(&full[..9], "t.npy"), &["truncated", "preamble"]);
    format_error(npy::parse(&full[..40], "t.npy"), &["truncated header", "118 bytes of header but only 30 follow"]);
    let v2 = npy_bytes(2, &dict("<f4", "(1,)"), &[]);
    format_error(npy::parse(&v2[..11], "t.npy"), &["truncated"]);
}

#[test]
fn unsupported_dtype_is_an_error() {
    format_error(
        npy::parse(&npy_bytes(1, &dict("<c8", "(1,)"), &[0; 8]), "c.npy"),
        &["dtype `<c8` is not supported", "<f4"],
    );
    format_error(npy::parse(&npy_bytes(1, &dict(">f4", "(1,)"), &[0; 4]), "c.npy"), &["big-endian", "`>f4`"]);
    let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }";
    format_error(npy::parse(&npy_bytes(1, structured, &[0; 4]), "c.npy"), &["structured dtypes"]);
}

#[test]
fn fortran_order_is_an_error() {
    let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
    format_error(npy::parse(&npy_bytes(1, header, &f4(&[1.0; 4])), "f.npy"), &["Fortran", "ascontiguousarray"]);
}

#[test]
fn malformed_header_is_an_error() {
    for (header, part) in [
        ("{'descr': '<f4', 'shape': (1,), }", "the key `fortran_order` is missing"),
        ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "appears twice"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unexpected key `x`"),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "unexpected value"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "expected a dimension size"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the closing"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': 5}", "unexpected value"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': '(1,)'}", "`shape` has a value of the wrong type"),
        ("{'descr': '<f4' 'shape'", "expected `}` at offset 16 but found `'`"),
        ("[1, 2]", "expected `{`"),
        ("{'shape': (99999999999999999999999,)", "too large"),
    ] {
        format_error(npy::parse(&npy_bytes(1, header, &[0; 4]), "h.npy"), &["malformed header", part]);
    }
}

#[test]
fn data_length_mismatch_is_an_error() {
    let short = npy_bytes(1, &dict("<f4", "(2, 3)"), &f4(&[1.0; 5]));
    format_error(
        npy::parse(&short, "d.npy"),
        &["data length mismatch", "shape (2, 3) of `<f4` needs 24 bytes", "has 20"],
    );
    let long = npy_bytes(1, &dict("<f8", "(1,)"), &[0; 9]);
    format_error(npy::parse(&long, "d.npy"), &["needs 8 bytes", "has 9"]);
    let huge = npy_bytes(1, &dict("<f8", "(4294967296, 4294967296, 4294967296)"), &[]);
    format_error(npy::parse(&huge, "d.npy"), &["far larger than a file can hold"]);
}

#[test]
fn features_labels_count_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x.npy", &f4_file("(3, 1)", &[1.0, 2.0, 3.0]));
    let y = write(dir.path(), "y.npy", &npy_bytes(1, &dict("|u1", "(2,)"), &[0, 1]));
    format_error(npy::load(&x, &y, TargetKind::Auto), &["y.npy: 2 labels, but", "x.npy has 3 samples"]);
}

#[test]
fn bad_shapes_and_values_in_load_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let x3 = write(dir.path(), "x3.npy", &f4_file("(1, 1, 1)", &[1.0]));
    let y = write(dir.path(), "y.npy", &npy_bytes(1, &dict("|u1", "(1,)"), &[0]));
    format_error(npy::load(&x3, &y, TargetKind::Auto), &["shape (1, 1, 1) must be 1-D (n) or 2-D"]);
    let nan = write(dir.path(), "nan.npy", &f4_file("(1, 2)", &[1.0, f32::NAN]));
    format_error(npy::load(&nan, &y, TargetKind::Auto), &["nan.npy: row 0, column 1: NaN is not a finite number"]);
    let x = write(dir.path(), "x.npy", &f4_file("(2, 1)", &[1.0, 2.0]));
    let neg = write(dir.path(), "neg.npy", &npy_bytes(1, &dict("<i4", "(2,)"), &[0, 0, 0, 0, 255, 255, 255, 255]));
    format_error(npy::load(&x, &neg, TargetKind::Classes), &["neg.npy: element 1: class id `-1` is negative"]);
    let missing = dir.path().join("nope.npy");
    assert!(matches!(npy::load(&missing, &y, TargetKind::Auto), Err(DataError::Io { .. })));
}

/// An f8 file's values are kept exactly (f64 storage), an f4 file's exactly too.
#[test]
fn f8_values_are_kept_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let x = [1.0 + f64::EPSILON, 0.1, -1e-300, 1e300];
    let data: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let xp = write(dir.path(), "x.npy", &npy_bytes(1, &dict("<f8", "(2, 2)"), &data));
    let yp = write(dir.path(), "y.npy", &f4_file("(2,)", &[0.0, 1.0]));
    let d = npy::load(&xp, &yp, TargetKind::Classes).unwrap();
    assert_eq!(d.features.iter().copied().collect::<Vec<f64>>(), x);
}
