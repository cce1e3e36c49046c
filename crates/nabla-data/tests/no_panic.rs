//! A cheap, deterministic stand-in for the fuzz targets (see `fuzz/`): every prefix of a valid
//! file, and every single-byte change of one, is parsed or rejected, never a panic.

use nabla_data::csv::{self, Column, TargetKind};
use nabla_data::{idx, npy};

/// Runs `parse` on every prefix of `good` and on `good` with each byte set to each of a few values.
fn mangle(good: &[u8], parse: impl Fn(&[u8])) {
    for end in 0..=good.len() {
        parse(&good[..end]);
    }
    let mut bytes = good.to_vec();
    for i in 0..good.len() {
        for b in [0x00, 0x01, 0x08, 0x0a, b',', b'-', b'.', b'(', b')', b'\'', b'9', 0x7f, 0x80, 0xff] {
            bytes[i] = b;
            parse(&bytes);
        }
        bytes[i] = good[i];
    }
}

#[test]
fn idx_never_panics() {
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    images.extend(0..12);
    let labels = [0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4];
    for good in [&images[..], &labels[..]] {
        mangle(good, |b| {
            let _ = idx::parse_images(b, "f");
            let _ = idx::parse_labels(b, "f");
        });
    }
}

#[test]
fn csv_never_panics() {
    mangle(b"a,\"b\",label\r\n1.5,-2e3,0\n\n3,4,1\n", |b| {
        for target in [Column::Index(0), Column::Name("label".into())] {
            for kind in [TargetKind::Classes, TargetKind::Values, TargetKind::Auto] {
                let _ = csv::parse(b, "f.csv", &target, kind);
            }
        }
        let _ = csv::parse_features(b, "f.csv");
    });
}

#[test]
fn npy_never_panics() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }         \n";
    let mut good = b"\x93NUMPY\x01\x00".to_vec();
    good.extend_from_slice(&(header.len() as u16).to_le_bytes());
    good.extend_from_slice(header.as_bytes());
    good.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    assert_eq!(npy::parse(&good, "f.npy").unwrap().data, [1.0, 2.0]);
    mangle(&good, |b| {
        let _ = npy::parse(b, "f.npy");
    });
}
