//! MNIST's IDX files: a big-endian header (magic number, then one `u32` size per dimension)
//! followed by the unsigned bytes, row-major. Images are `0x00000803` (n, rows, cols), labels
//! `0x00000801` (n). Files may be gzip'd; the readers detect that by the gzip magic bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::Array2;

use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result, read_file};

/// The magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// MNIST's class count.
pub const MNIST_CLASSES: usize = 10;

/// The two bytes that start every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Parses an IDX image file: `n × (rows·cols)` raw pixel values (0..=255).
/// `name` is the file name used in messages.
pub fn parse_images(bytes: &[u8], name: &str) -> Result<Array2<f64>> {
    let (dims, body) = header(bytes, name, 3, "image")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::format(
            name,
            format!("the header declares images of {rows}×{cols} pixels; both must be ≥ 1"),
        ));
    }
    let declared = format!("{n} images of {rows}×{cols} pixels");
    let Some((pixels, total)) = rows.checked_mul(cols).and_then(|p| Some((p, n.checked_mul(p)?))) else {
        return Err(DataError::format(name, format!("the header declares {declared}, far more than a file can hold")));
    };
    body_length(body, total, name, &declared)?;
    Array2::from_shape_vec((n, pixels), body.iter().map(|&b| f64::from(b)).collect())
        .map_err(|e| DataError::format(name, format!("cannot shape the images: {e}")))
}

/// Parses an IDX label file: one label per sample (any byte value; [`load_mnist`] checks the
/// range). `name` is the file name used in messages.
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<usize>> {
    let (dims, body) = header(bytes, name, 1, "label")?;
    body_length(body, dims[0], name, &format!("{} labels", dims[0]))?;
    Ok(body.iter().map(|&b| usize::from(b)).collect())
}

/// Reads an IDX image file, gzip'd or not (see [`parse_images`]).
pub fn read_images(path: &Path) -> Result<Array2<f64>> {
    parse_images(&contents(path)?, &path.display().to_string())
}

/// Reads an IDX label file, gzip'd or not (see [`parse_labels`]).
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    parse_labels(&contents(path)?, &path.display().to_string())
}

/// Loads MNIST from `dir`: `(train, test)`, named `mnist-train` and `mnist-test`, with raw pixel
/// values 0..=255 as features and 10 classes. The four files have their standard names
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`), each with or without `.gz`.
pub fn load_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    let train = load_pair(dir, "mnist-train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = load_pair(dir, "mnist-test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    Ok((train, test))
}

/// One MNIST part: its images and labels, checked against each other.
fn load_pair(dir: &Path, name: &str, images: &str, labels: &str) -> Result<Dataset> {
    let (images_path, labels_path) = (find(dir, images)?, find(dir, labels)?);
    let features = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if labels.len() != features.nrows() {
        return Err(DataError::format(
            labels_path.display().to_string(),
            format!(
                "{} labels, but {} has {} images; the two files must come from the same set",
                labels.len(),
                images_path.display(),
                features.nrows()
            ),
        ));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|&(_, &l)| l >= MNIST_CLASSES) {
        return Err(DataError::format(
            labels_path.display().to_string(),
            format!("label {i} is {l}, but MNIST labels are digits 0..9; is this an MNIST label file?"),
        ));
    }
    Dataset::new(name, features, Targets::Classes { labels, classes: MNIST_CLASSES })
}

/// The path of MNIST file `base` in `dir`, gzip'd or not.
fn find(dir: &Path, base: &str) -> Result<PathBuf> {
    let candidates = [dir.join(base), dir.join(format!("{base}.gz"))];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let detail = format!(
        "no {base} or {base}.gz here; an MNIST directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, \
         t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each with or without .gz"
    );
    Err(DataError::Io {
        path: dir.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, detail),
    })
}

/// The file's bytes, gunzipped when they start with the gzip magic bytes. A compressed file is
/// decompressed only as far as its header promises: the header, then at most the data bytes it
/// declares plus one (so that a longer stream is reported as such), never a whole gzip bomb.
fn contents(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path)?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let corrupt = |e: std::io::Error| {
        DataError::format(
            path.display().to_string(),
            format!("corrupt gzip data ({e}); the file is damaged or incomplete: fetch it again"),
        )
    };
    let mut gz = MultiGzDecoder::new(raw.as_slice());
    let mut out = Vec::new();
    (&mut gz).take(4).read_to_end(&mut out).map_err(corrupt)?;
    let ndims = out.get(3).copied().unwrap_or(0);
    (&mut gz).take(4 * u64::from(ndims)).read_to_end(&mut out).map_err(corrupt)?;
    let sizes = out.get(4..).filter(|s| s.len() == 4 * usize::from(ndims)).unwrap_or_default();
    // An incomplete or overflowing header reads one byte more; `header` then says what is wrong.
    let declared = sizes
        .chunks_exact(4)
        .try_fold(1u64, |n, c| n.checked_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))))
        .filter(|_| !sizes.is_empty())
        .unwrap_or(0);
    // The header is untrusted too: deflate expands at most ~1032:1, and no IDX file nabla reads
    // holds more than MAX_DATA bytes.
    let possible = (raw.len() as u64).saturating_mul(1032);
    if declared > MAX_DATA || declared > possible {
        return Err(DataError::format(
            path.display().to_string(),
            format!(
                "the header declares {declared} bytes of data, more than {} (the most a {}-byte gzip file can hold, \
                 or {MAX_DATA}): the header is damaged",
                possible.min(MAX_DATA),
                raw.len()
            ),
        ));
    }
    (&mut gz).take(declared.saturating_add(1)).read_to_end(&mut out).map_err(corrupt)?;
    if !out.starts_with(&[0, 0, 0x08]) {
        // Not an IDX header: tell damaged compressed data (a failing checksum further on) from a
        // sound stream of something else, reading on into nothing, as far as a bound.
        std::io::copy(&mut gz.take(MAX_CHECKED), &mut std::io::sink()).map_err(corrupt)?;
    }
    Ok(out)
}

/// How far a compressed file whose header is not IDX is read on to check its integrity.
const MAX_CHECKED: u64 = 64 << 20;

/// The most data bytes a compressed IDX file may declare (16 GiB; MNIST's largest is 47 MB).
const MAX_DATA: u64 = 16 << 30;

/// Checks the magic number of an IDX file of `what`s with `ndims` dimensions; returns the
/// declared sizes and the bytes after the header.
fn header<'a>(bytes: &'a [u8], name: &str, ndims: u8, what: &str) -> Result<(Vec<usize>, &'a [u8])> {
    let expected = 0x0800 | u32::from(ndims);
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(DataError::format(
            name,
            "the data is gzip-compressed; read the file with the idx readers or gunzip it",
        ));
    }
    let Some(magic) = bytes.get(..4) else {
        return Err(DataError::format(
            name,
            format!("truncated: {} byte(s), too short for an IDX header; the file is incomplete", bytes.len()),
        ));
    };
    let magic_hex = format!("0x{:02x}{:02x}{:02x}{:02x}", magic[0], magic[1], magic[2], magic[3]);
    if magic[..2] != [0, 0] {
        return Err(DataError::format(
            name,
            format!("bad magic number {magic_hex}: not an IDX file (an IDX {what} file starts with {expected:#010x})"),
        ));
    }
    if magic[2] != 0x08 {
        return Err(DataError::format(
            name,
            format!(
                "magic number {magic_hex} declares element type {:#04x}; only unsigned bytes (0x08), as in MNIST, are \
                 supported",
                magic[2]
            ),
        ));
    }
    if magic[3] != ndims {
        let hint = match magic[3] {
            1 => "; it looks like a label file: are the image and label files swapped?",
            3 => "; it looks like an image file: are the image and label files swapped?",
            _ => "",
        };
        return Err(DataError::format(
            name,
            format!(
                "magic number {magic_hex} declares {} dimension(s), but an IDX {what} file has {ndims} \
                 ({expected:#010x}){hint}",
                magic[3]
            ),
        ));
    }
    let end = 4 + 4 * usize::from(ndims);
    let Some(sizes) = bytes.get(4..end) else {
        return Err(DataError::format(
            name,
            format!(
                "truncated header: {} byte(s), but an IDX {what} header is {end} bytes; the file is incomplete",
                bytes.len()
            ),
        ));
    };
    let dims = sizes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    Ok((dims, &bytes[end..]))
}

/// Checks that `body` is exactly the `expected` bytes the header declared (`declared`, in words).
fn body_length(body: &[u8], expected: usize, name: &str, declared: &str) -> Result<()> {
    if body.len() < expected {
        return Err(DataError::format(
            name,
            format!(
                "truncated: the header declares {declared} ({expected} bytes of data) but only {} bytes follow; the \
                 file is incomplete: fetch it again",
                body.len()
            ),
        ));
    }
    if body.len() > expected {
        return Err(DataError::format(
            name,
            format!(
                "{} unexpected bytes after the {declared} the header declares ({expected} bytes of data); the header \
                 or the file is damaged",
                body.len() - expected
            ),
        ));
    }
    Ok(())
}
