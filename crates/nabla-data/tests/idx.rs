//! The IDX (MNIST) loader: round trips, gzip, and one test per kind of bad input.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use nabla_data::idx::{self, load_mnist, parse_images, parse_labels, read_images, read_labels};
use nabla_data::{DataError, Targets};

/// An IDX file: `magic`, the sizes, then `body`.
fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// `n` images of `rows × cols`, pixel `k` of the file being `k % 256`.
fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let body: Vec<u8> = (0..n * rows * cols).map(|k| (k % 256) as u8).collect();
    idx_bytes(idx::IMAGES_MAGIC, &[n, rows, cols], &body)
}

fn labels(values: &[u8]) -> Vec<u8> {
    idx_bytes(idx::LABELS_MAGIC, &[values.len() as u32], values)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
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
fn parses_images_and_labels() {
    let x = parse_images(&images(3, 2, 2), "i").unwrap();
    assert_eq!(x.dim(), (3, 4));
    assert_eq!(x.row(2).to_vec(), [8.0, 9.0, 10.0, 11.0]);
    assert_eq!(parse_labels(&labels(&[5, 0, 4]), "l").unwrap(), [5, 0, 4]);
    assert_eq!(parse_images(&images(0, 28, 28), "i").unwrap().dim(), (0, 784));
    let big = parse_images(&images(2, 16, 16), "i").unwrap();
    assert_eq!(big[[0, 255]], 255.0);
}

#[test]
fn reads_plain_and_gzipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, gz) = (dir.path().join("images"), dir.path().join("images.gz"));
    std::fs::write(&raw, images(4, 3, 2)).unwrap();
    std::fs::write(&gz, gzip(&images(4, 3, 2))).unwrap();
    assert_eq!(read_images(&raw).unwrap(), read_images(&gz).unwrap());
    let l = dir.path().join("labels.gz");
    std::fs::write(&l, gzip(&labels(&[1, 2, 3, 9]))).unwrap();
    assert_eq!(read_labels(&l).unwrap(), [1, 2, 3, 9]);
}

/// Writes a small MNIST directory: 3 training and 2 test images of 2×2, some files gzip'd.
fn mnist_dir(dir: &Path, train_labels: &[u8]) {
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&images(3, 2, 2))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(train_labels)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(2, 2, 2)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels(&[7, 2]))).unwrap();
}

#[test]
fn loads_an_mnist_directory() {
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), &[5, 0, 4]);
    let (train, test) = load_mnist(dir.path()).unwrap();
    assert_eq!((train.name.as_str(), train.len(), train.features_per_sample()), ("mnist-train", 3, 4));
    assert_eq!(train.targets, Targets::Classes { labels: vec![5, 0, 4], classes: 10 });
    assert_eq!((test.name.as_str(), test.len()), ("mnist-test", 2));
    assert_eq!(test.targets, Targets::Classes { labels: vec![7, 2], classes: 10 });
}

#[test]
fn missing_mnist_file_lists_the_names() {
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), &[5, 0, 4]);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"), "{m}");
    assert!(m.contains("train-images-idx3-ubyte, train-labels-idx1-ubyte"), "{m}");
}

#[test]
fn truncated_header_is_an_error() {
    format_error(parse_images(&images(1, 2, 2)[..10], "t"), &["t: truncated header", "10 byte(s)", "16 bytes"]);
    format_error(parse_labels(&labels(&[1])[..6], "t"), &["truncated header", "8 bytes"]);
    format_error(parse_labels(&[0, 0], "t"), &["truncated", "too short for an IDX header"]);
    format_error(parse_labels(&[], "t"), &["truncated"]);
}

#[test]
fn truncated_body_is_an_error() {
    let full = images(3, 2, 2);
    format_error(
        parse_images(&full[..full.len() - 1], "t"),
        &["truncated", "3 images of 2×2 pixels", "12 bytes", "only 11"],
    );
    format_error(parse_labels(&labels(&[1, 2, 3])[..10], "t"), &["truncated", "3 labels", "only 2"]);
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut l = labels(&[1, 2]);
    l.push(0);
    format_error(parse_labels(&l, "t"), &["1 unexpected bytes after the 2 labels"]);
}

#[test]
fn huge_declared_sizes_do_not_allocate() {
    let max = u32::MAX;
    format_error(
        parse_images(&idx_bytes(idx::IMAGES_MAGIC, &[max, max, max], &[]), "h"),
        &["far more than a file can hold"],
    );
    format_error(parse_images(&idx_bytes(idx::IMAGES_MAGIC, &[max, 28, 28], &[]), "h"), &["truncated"]);
    format_error(parse_labels(&idx_bytes(idx::LABELS_MAGIC, &[max], &[1]), "h"), &["truncated", "4294967295 labels"]);
    format_error(parse_images(&idx_bytes(idx::IMAGES_MAGIC, &[1, 0, 28], &[]), "h"), &["0×28 pixels"]);
}

#[test]
fn wrong_magic_is_an_error() {
    format_error(
        parse_images(&idx_bytes(0x1234_0803, &[1, 1, 1], &[0]), "m"),
        &["bad magic number 0x12340803", "not an IDX"],
    );
    format_error(
        parse_images(&idx_bytes(0x0000_0d03, &[1, 1, 1], &[0; 4]), "m"),
        &["element type 0x0d", "unsigned bytes"],
    );
    format_error(parse_images(&gzip(&images(1, 1, 1)), "m"), &["gzip-compressed"]);
}

#[test]
fn wrong_dimensions_are_an_error() {
    format_error(
        parse_labels(&images(1, 2, 2), "l"),
        &["0x00000803 declares 3 dimension(s)", "label file has 1", "swapped"],
    );
    format_error(parse_images(&labels(&[1]), "i"), &["declares 1 dimension(s)", "image file has 3", "swapped"]);
    format_error(parse_images(&idx_bytes(0x0000_0802, &[1, 4], &[0; 4]), "i"), &["declares 2 dimension(s)"]);
}

#[test]
fn image_label_count_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), &[5, 0]);
    format_error(
        load_mnist(dir.path()),
        &["train-labels-idx1-ubyte: 2 labels, but", "train-images-idx3-ubyte.gz has 3 images"],
    );
}

#[test]
fn label_of_ten_or_more_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    mnist_dir(dir.path(), &[5, 10, 4]);
    format_error(load_mnist(dir.path()), &["train-labels-idx1-ubyte: label 1 is 10", "digits 0..9"]);
}

#[test]
fn corrupt_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = gzip(&images(4, 3, 2));
    let path = dir.path().join("cut.gz");
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    format_error(read_images(&path), &["cut.gz: corrupt gzip data", "fetch it again"]);
    let mut bad = good.clone();
    for b in &mut bad[12..20] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bad).unwrap();
    format_error(read_images(&path), &["corrupt gzip data"]);
    std::fs::write(&path, [0x1f, 0x8b, 0, 0, 0]).unwrap();
    format_error(read_labels(&path), &["corrupt gzip data"]);
}

/// A gzip bomb — a header promising 10 small images followed by 64 MiB of zeros — is read only
/// as far as the header promises plus one byte: the error counts exactly one extra byte.
#[test]
fn a_gzip_bomb_is_decompressed_only_as_far_as_the_header_promises() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb-idx3-ubyte.gz");
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&idx_bytes(idx::IMAGES_MAGIC, &[10, 28, 28], &[])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        e.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, e.finish().unwrap()).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20, "the bomb is small on disk");
    format_error(read_images(&path), &["1 unexpected bytes after the 10 images of 28×28 pixels"]);
    // A label file likewise, and a header too short to promise anything.
    let labels_path = dir.path().join("bomb-idx1-ubyte.gz");
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&idx_bytes(idx::LABELS_MAGIC, &[3], &[])).unwrap();
    e.write_all(&zeros).unwrap();
    std::fs::write(&labels_path, e.finish().unwrap()).unwrap();
    format_error(read_labels(&labels_path), &["1 unexpected bytes after the 3 labels"]);
    std::fs::write(&labels_path, gzip(&[0, 0])).unwrap();
    format_error(read_labels(&labels_path), &["truncated"]);
    // A header promising more than the compressed file can hold is refused before decompressing.
    std::fs::write(&path, gzip(&idx_bytes(idx::IMAGES_MAGIC, &[60_000, 60_000, 60_000], &[]))).unwrap();
    format_error(read_images(&path), &["the header declares", "the header is damaged"]);
}
