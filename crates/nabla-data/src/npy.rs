//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) of little-endian numbers, C order.
//!
//! A file is the magic `\x93NUMPY`, a version, a header length, a header that is a Python dict
//! literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, then the data.
//! The header is read by a small parser that accepts only that shape of dict.

use std::path::Path;

use ndarray::Array2;

use crate::csv::TargetKind;
use crate::dataset::{Dataset, Targets};
use crate::error::{DataError, Result, read_file, stem};
use crate::targets;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element types read, as NumPy's `descr` spells them.
const SUPPORTED: &str = "float32 (<f4), float64 (<f8), uint8 (|u1), int32 (<i4) or int64 (<i8)";

/// An array read from a `.npy` file: its shape and its elements in C (row-major) order,
/// converted to `f64` (64-bit integers beyond 2⁵³ lose precision).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The size of each dimension (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<f64>,
}

/// The element types read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F4,
    F8,
    U1,
    I4,
    I8,
}

impl Dtype {
    /// The type `descr` names, or why it is not supported.
    fn from_descr(descr: &str) -> Result<Dtype, String> {
        Ok(match descr {
            "<f4" => Dtype::F4,
            "<f8" => Dtype::F8,
            "|u1" | "<u1" | ">u1" | "=u1" | "u1" => Dtype::U1,
            "<i4" => Dtype::I4,
            "<i8" => Dtype::I8,
            d if d.starts_with('>') => {
                return Err(format!(
                    "big-endian data (`{d}`) is not supported; convert it with `a.astype(a.dtype.newbyteorder('<'))`"
                ));
            }
            d => return Err(format!("dtype `{}` is not supported; save the array as {SUPPORTED}", short(d))),
        })
    }

    /// Bytes per element.
    fn size(self) -> usize {
        match self {
            Dtype::U1 => 1,
            Dtype::F4 | Dtype::I4 => 4,
            Dtype::F8 | Dtype::I8 => 8,
        }
    }

    /// The element stored in `b` (exactly [`Dtype::size`] bytes).
    fn decode(self, b: &[u8]) -> f64 {
        let mut buf = [0u8; 8];
        buf[..b.len()].copy_from_slice(b);
        match self {
            Dtype::F4 => f64::from(f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
            Dtype::F8 => f64::from_le_bytes(buf),
            Dtype::U1 => f64::from(buf[0]),
            Dtype::I4 => f64::from(i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])),
            Dtype::I8 => i64::from_le_bytes(buf) as f64,
        }
    }
}

/// Parses the `.npy` file `bytes`; `name` is the file name used in messages. Any rank is
/// accepted (the caller decides which it can use).
pub fn parse(bytes: &[u8], name: &str) -> Result<NpyArray> {
    let fail = |detail: String| DataError::format(name, detail);
    if !bytes.starts_with(MAGIC) {
        return Err(if MAGIC.starts_with(bytes) {
            fail(format!("truncated: {} byte(s), too short for a .npy header; the file is incomplete", bytes.len()))
        } else {
            fail("bad magic: not a .npy file (one starts with the bytes \\x93NUMPY); save it with numpy.save".into())
        });
    }
    let (major, minor) = (bytes.get(6).copied(), bytes.get(7).copied());
    let len_bytes = match major {
        Some(1) => 2,
        Some(2 | 3) => 4,
        Some(v) => {
            return Err(fail(format!(
                "format version {v}.{} is not supported (1.0, 2.0 and 3.0 are); save it with numpy.save",
                minor.unwrap_or(0)
            )));
        }
        None => return Err(fail("truncated: the file ends inside the .npy preamble; it is incomplete".into())),
    };
    let start = 8 + len_bytes;
    let Some(len) = bytes.get(8..start) else {
        return Err(fail("truncated: the file ends inside the .npy preamble; it is incomplete".into()));
    };
    let header_len = len.iter().rev().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = start.checked_add(header_len).and_then(|end| bytes.get(start..end)) else {
        return Err(fail(format!(
            "truncated header: it declares {header_len} bytes of header but only {} follow; the file is incomplete",
            bytes.len() - start
        )));
    };
    let body = &bytes[start + header_len..];
    let header = std::str::from_utf8(header).map_err(|_| fail("the header is not text; the file is damaged".into()))?;
    let Header { descr, fortran_order, shape } =
        Header::parse(header).map_err(|why| fail(format!("malformed header `{}`: {why}", short(header.trim_end()))))?;
    let dtype = Dtype::from_descr(&descr).map_err(fail)?;
    if fortran_order {
        return Err(fail(
            "Fortran (column-major) order is not supported; save `numpy.ascontiguousarray(a)` instead".into(),
        ));
    }
    let Some(expected) = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d)) else {
        return Err(fail(format!(
            "shape {} is far larger than a file can hold; the header is damaged",
            shape_text(&shape)
        )));
    };
    if body.len() != expected {
        return Err(fail(format!(
            "data length mismatch: shape {} of `{descr}` needs {expected} bytes of data but the file has {}; it is \
             truncated or damaged",
            shape_text(&shape),
            body.len()
        )));
    }
    let data = body.chunks_exact(dtype.size()).map(|b| dtype.decode(b)).collect();
    Ok(NpyArray { shape, data })
}

/// Reads the `.npy` file at `path` (see [`parse`]).
pub fn read(path: &Path) -> Result<NpyArray> {
    parse(&read_file(path)?, &path.display().to_string())
}

/// A data set from two `.npy` files: `features`, 2-D (`n × d`) or 1-D (`n`, read as `n × 1`),
/// and `labels`, 1-D (`n` class ids or values, read as `kind` says) or 2-D (`n × k` values).
/// The data set is named after the features file's stem.
pub fn load(features: &Path, labels: &Path, kind: TargetKind) -> Result<Dataset> {
    let (fname, lname) = (features.display().to_string(), labels.display().to_string());
    let x = read(features)?;
    let y = read(labels)?;
    let (n, d) = match x.shape[..] {
        [n] => (n, 1),
        [n, d] if d > 0 => (n, d),
        [_, _] => return Err(DataError::format(fname, "the features have 0 columns; each sample needs at least one")),
        _ => {
            return Err(DataError::format(
                fname,
                format!("features of shape {} must be 1-D (n) or 2-D (samples × features)", shape_text(&x.shape)),
            ));
        }
    };
    let (m, k) = match y.shape[..] {
        [m] => (m, 1),
        [m, k] if k > 0 => (m, k),
        _ => {
            return Err(DataError::format(
                lname,
                format!("labels of shape {} must be 1-D (n) or 2-D (samples × outputs)", shape_text(&y.shape)),
            ));
        }
    };
    if m != n {
        return Err(DataError::format(
            lname,
            format!("{m} labels, but {fname} has {n} samples; both files need one row per sample"),
        ));
    }
    finite(&x.data, d, &fname)?;
    finite(&y.data, k, &lname)?;
    let features = Array2::from_shape_vec((n, d), x.data)
        .map_err(|e| DataError::format(fname.as_str(), format!("cannot shape the features: {e}")))?;
    let targets = if k == 1 {
        targets::build(&y.data, kind, |i, v, why| {
            DataError::format(lname.as_str(), format!("element {i}: class id `{v}` {why}"))
        })?
    } else if kind == TargetKind::Classes {
        return Err(DataError::format(
            lname,
            format!("labels of shape {} are values; class ids must be 1-D (n)", shape_text(&y.shape)),
        ));
    } else {
        Targets::Values(
            Array2::from_shape_vec((m, k), y.data)
                .map_err(|e| DataError::format(lname.as_str(), format!("cannot shape the labels: {e}")))?,
        )
    };
    Dataset::new(stem(&fname), features, targets)
}

/// Checks that every element is finite, or names the first that is not (as row and column of a
/// `cols`-wide matrix). The elements are held in f64, exactly as an f4 or f8 file has them.
fn finite(data: &[f64], cols: usize, name: &str) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(DataError::format(
            name,
            format!(
                "row {}, column {}: {} is not a finite number; NaN and infinity are not allowed",
                i / cols,
                i % cols,
                data[i]
            ),
        )),
    }
}

/// A shape as Python writes it: `(3,)`, `(3, 4)`, `()`.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// At most 80 characters of `s`, for a message.
fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The three keys of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in a `.npy` header dict.
enum Value {
    Str(String),
    Bool(bool),
    Shape(Vec<usize>),
}

impl Header {
    /// Parses `{'descr': …, 'fortran_order': …, 'shape': (…), }` (keys in any order, each once,
    /// trailing comma and whitespace allowed), or says what is wrong.
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Cursor { s: text.as_bytes(), pos: 0 };
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        p.consume(b'{')?;
        loop {
            p.skip_space();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            if !matches!(key.as_str(), "descr" | "fortran_order" | "shape") {
                return Err(format!("unexpected key `{}`", short(&key)));
            }
            p.skip_space();
            p.consume(b':')?;
            p.skip_space();
            let value = p.value()?;
            let slot_taken = match (key.as_str(), value) {
                ("descr", Value::Str(s)) => descr.replace(s).is_some(),
                ("fortran_order", Value::Bool(b)) => fortran_order.replace(b).is_some(),
                ("shape", Value::Shape(s)) => shape.replace(s).is_some(),
                _ => return Err(format!("`{key}` has a value of the wrong type")),
            };
            if slot_taken {
                return Err(format!("key `{key}` appears twice"));
            }
            p.skip_space();
            if !p.eat(b',') {
                p.skip_space();
                p.consume(b'}')?;
                break;
            }
        }
        p.skip_space();
        if p.pos != p.s.len() {
            return Err("unexpected text after the closing `}`".into());
        }
        let missing = |key: &str| format!("the key `{key}` is missing");
        Ok(Header {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }
}

/// A position in header text.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn consume(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(found) if found.is_ascii_graphic() => {
                format!("expected `{}` at offset {} but found `{}`", char::from(c), self.pos, char::from(found))
            }
            Some(found) => {
                format!("expected `{}` at offset {} but found byte {found:#04x}", char::from(c), self.pos)
            }
            None => format!("expected `{}` but the header ends", char::from(c)),
        })
    }

    /// A quoted string without escapes: `'…'` or `"…"`.
    fn string(&mut self) -> Result<String, String> {
        let Some(quote @ (b'\'' | b'"')) = self.peek() else {
            return Err(format!("expected a quoted string at offset {}", self.pos));
        };
        let start = self.pos + 1;
        let Some(len) = self.s[start..].iter().position(|&c| c == quote) else {
            return Err("a string is not closed".into());
        };
        let text = &self.s[start..start + len];
        if text.contains(&b'\\') {
            return Err("escapes in strings are not supported".into());
        }
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    /// A string, `True`/`False` or a tuple of non-negative integers.
    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'(') => self.shape().map(Value::Shape),
            Some(b'[') => {
                Err("structured dtypes (a list `descr`) are not supported; save a plain numeric array".into())
            }
            _ => {
                for (word, b) in [("True", true), ("False", false)] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(Value::Bool(b));
                    }
                }
                Err(format!("unexpected value at offset {}", self.pos))
            }
        }
    }

    /// `()`, `(3,)`, `(3, 4)`, `(3, 4,)`; Python 2's `3L` is accepted.
    fn shape(&mut self) -> Result<Vec<usize>, String> {
        self.consume(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b')') {
                return Ok(dims);
            }
            dims.push(self.integer()?);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                self.consume(b')')?;
                return Ok(dims);
            }
        }
    }

    /// A non-negative decimal integer that fits `usize`.
    fn integer(&mut self) -> Result<usize, String> {
        let digits = self.s[self.pos..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("expected a dimension size at offset {}", self.pos));
        }
        let text = &self.s[self.pos..self.pos + digits];
        let n = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or("a dimension size is too large")?;
        self.pos += digits;
        self.eat(b'L');
        Ok(n)
    }
}
