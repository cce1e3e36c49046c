//! CSV files of numbers: a header line of column names, then one row per line.
//!
//! The format is the simple one that `numpy.savetxt(..., delimiter=",", header=..., comments="")`,
//! `pandas.DataFrame.to_csv(index=False)` and spreadsheets write: cells separated by commas,
//! every cell a number (surrounding spaces and double quotes are ignored), a trailing `\r`
//! tolerated, blank lines skipped. Quoted cells that contain commas are not supported. One
//! column is the target; every other column is a feature.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ndarray::Array2;

use crate::dataset::Dataset;
use crate::error::{DataError, Result, read_file, stem};
use crate::targets;
pub use crate::targets::TargetKind;

/// A column of a CSV file: by its header name or by its 0-based index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// The column whose header cell is this name.
    Name(String),
    /// The column at this 0-based position.
    Index(usize),
}

impl FromStr for Column {
    type Err = DataError;

    /// All digits: an [`Column::Index`]; anything else: a [`Column::Name`].
    fn from_str(s: &str) -> Result<Column> {
        if s.is_empty() {
            return Err(DataError::invalid("target column", "an empty name; give a header name or a 0-based index"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Column::Index)
                .map_err(|_| DataError::invalid("target column", format!("`{s}` is too large for a column index")));
        }
        Ok(Column::Name(s.to_string()))
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Name(name) => f.write_str(name),
            Column::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Reads the CSV file at `path` with `target` as the target column, read as `kind`.
/// The data set is named after the file stem.
pub fn read(path: &Path, target: &Column, kind: TargetKind) -> Result<Dataset> {
    let bytes = read_file(path)?;
    parse(&bytes, &path.display().to_string(), target, kind)
}

/// Parses CSV `bytes`; `name` is the file name used in messages (and, through its stem, the
/// data set's name).
pub fn parse(bytes: &[u8], name: &str, target: &Column, kind: TargetKind) -> Result<Dataset> {
    let table = table(bytes, name, Some(target))?;
    let (t, columns, rows) = (table.target.unwrap_or(0), table.names.len(), table.lines.len());
    let mut features = Vec::with_capacity(rows * (columns - 1));
    let mut values = Vec::with_capacity(rows);
    for row in table.cells.chunks_exact(columns) {
        for (j, &v) in row.iter().enumerate() {
            if j == t {
                values.push(v);
            } else {
                features.push(v);
            }
        }
    }
    let features = Array2::from_shape_vec((rows, columns - 1), features)
        .map_err(|e| DataError::format(name, format!("cannot shape the features: {e}")))?;
    let targets = targets::build(&values, kind, |i, v, why| {
        DataError::parse(name, table.lines.get(i).copied().unwrap_or(0), t + 1, format!("class id `{v}` {why}"))
    })?;
    Dataset::new(stem(name), features, targets)
}

/// Reads a CSV file whose every column is a feature (no target): the header's names and the
/// `rows × columns` values (for `nabla predict`).
pub fn read_features(path: &Path) -> Result<(Vec<String>, Array2<f64>)> {
    parse_features(&read_file(path)?, &path.display().to_string())
}

/// Parses CSV `bytes` whose every column is a feature (see [`read_features`]); `name` is the
/// file name used in messages.
pub fn parse_features(bytes: &[u8], name: &str) -> Result<(Vec<String>, Array2<f64>)> {
    let table = table(bytes, name, None)?;
    let names: Vec<String> = table.names.iter().map(|s| (*s).to_string()).collect();
    let x = Array2::from_shape_vec((table.lines.len(), names.len()), table.cells)
        .map_err(|e| DataError::format(name, format!("cannot shape the values: {e}")))?;
    Ok((names, x))
}

/// A parsed CSV file: its header and every row's numbers.
struct Table<'a> {
    /// The header's column names.
    names: Vec<&'a str>,
    /// The index of the target column, when one was asked for.
    target: Option<usize>,
    /// The numbers, row after row (`names.len()` per row).
    cells: Vec<f64>,
    /// The 1-based line number of each row.
    lines: Vec<usize>,
}

/// Splits `bytes` into a header and rows of numbers, checking that every row has one number per
/// header column; blank lines are skipped. `target` is looked up in the header (and at least one
/// feature column besides it required) before any row is read.
fn table<'a>(bytes: &'a [u8], name: &str, target: Option<&Column>) -> Result<Table<'a>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)));

    // The header: the first line that is not blank.
    let header = loop {
        let Some((line, raw)) = lines.next() else {
            return Err(DataError::format(
                name,
                "the file is empty; it needs a header line of column names, then one row of numbers per line",
            ));
        };
        let text = text(raw, line, name)?;
        if !text.trim().is_empty() {
            break text;
        }
    };
    let names: Vec<&str> = cells(header).collect();
    let columns = names.len();
    let target = target.map(|t| target_index(&names, t, name)).transpose()?;
    if target.is_some() && columns < 2 {
        let hint = if header.contains([';', '\t']) { " (columns must be separated by commas)" } else { "" };
        return Err(DataError::format(
            name,
            format!("the header has a single column, so there are no features besides the target{hint}"),
        ));
    }

    let (mut values, mut row_lines) = (Vec::new(), Vec::new());
    for (line, raw) in lines {
        let text = text(raw, line, name)?;
        if text.trim().is_empty() {
            continue;
        }
        let count = text.split(',').count();
        if count != columns {
            return Err(DataError::format(
                name,
                format!(
                    "line {line} has {count} cells but the header has {columns} columns; every row needs one number \
                     per column"
                ),
            ));
        }
        for (j, cell) in cells(text).enumerate() {
            values.push(number(cell).map_err(|why| DataError::parse(name, line, j + 1, why))?);
        }
        row_lines.push(line);
    }
    if row_lines.is_empty() {
        return Err(DataError::format(
            name,
            "there are no data rows after the header line; add one row of numbers per line",
        ));
    }
    Ok(Table { names, target, cells: values, lines: row_lines })
}

/// The line's text, or an error naming the line when it is not UTF-8.
fn text<'a>(raw: &'a [u8], line: usize, name: &str) -> Result<&'a str> {
    std::str::from_utf8(raw).map_err(|e| {
        DataError::format(
            name,
            format!("line {line} is not UTF-8 text (bad byte at offset {}); save the file as UTF-8", e.valid_up_to()),
        )
    })
}

/// The cells of a line: split at commas, trimmed of spaces and of surrounding double quotes.
fn cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|c| {
        let c = c.trim();
        c.strip_prefix('"').and_then(|c| c.strip_suffix('"')).unwrap_or(c)
    })
}

/// The column `target` names in the header `names`.
fn target_index(names: &[&str], target: &Column, name: &str) -> Result<usize> {
    match target {
        Column::Index(i) if *i < names.len() => Ok(*i),
        Column::Index(i) => Err(DataError::invalid(
            "target column",
            format!(
                "index {i} is out of range: {name} has {} column(s), indices 0..{}",
                names.len(),
                names.len().saturating_sub(1)
            ),
        )),
        Column::Name(wanted) => {
            let found: Vec<usize> = (0..names.len()).filter(|&j| names[j] == wanted).collect();
            match found[..] {
                [j] => Ok(j),
                [] => Err(DataError::invalid(
                    "target column",
                    format!(
                        "{name} has no column `{wanted}`; its columns are {} (or give a 0-based index)",
                        list(names)
                    ),
                )),
                _ => Err(DataError::invalid(
                    "target column",
                    format!("`{wanted}` names {} columns of {name}; give the 0-based index of one", found.len()),
                )),
            }
        }
    }
}

/// The header names for a message: all of them, or the first 20 and the count.
fn list(names: &[&str]) -> String {
    const SHOWN: usize = 20;
    let shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{}`", short(n))).collect();
    let more = if names.len() > SHOWN { format!(", … ({} in all)", names.len()) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// At most 40 characters of `s`, for a message.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

/// The finite number in a cell, or why it is not one. (Held in f64; training in f32 rounds it
/// once, when the batches are made.)
fn number(cell: &str) -> Result<f64, String> {
    if cell.is_empty() {
        return Err("the cell is empty; every cell needs a number (fill in missing values or drop the row)".into());
    }
    let Ok(v) = cell.parse::<f64>() else {
        return Err(format!("`{}` is not a number", short(cell)));
    };
    if !v.is_finite() {
        return Err(format!(
            "`{}` is not a finite number; NaN and infinity are not allowed (fill in or drop the row)",
            short(cell)
        ));
    }
    Ok(v)
}
