//! The CSV loader: good files and one test per kind of bad input.

use nabla_data::csv::{self, Column, TargetKind};
use nabla_data::{DataError, Targets};

fn label() -> Column {
    Column::Name("label".into())
}

fn parse(text: &str, kind: TargetKind) -> nabla_data::Result<nabla_data::Dataset> {
    csv::parse(text.as_bytes(), "data/small.csv", &label(), kind)
}

/// The error of parsing `text` with target `label` as classes, and its message.
fn error(text: &str) -> (DataError, String) {
    let e = parse(text, TargetKind::Classes).unwrap_err();
    let m = e.to_string();
    (e, m)
}

#[test]
fn reads_a_file_by_name_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iris-like.csv");
    std::fs::write(&path, "a,b,label\n1.5,2,0\n3,4e-1,2\n\n5, 6 ,1\n").unwrap();
    let d = csv::read(&path, &label(), TargetKind::Classes).unwrap();
    assert_eq!(d.name, "iris-like");
    assert_eq!(d.features, ndarray::array![[1.5f64, 2.0], [3.0, 0.4], [5.0, 6.0]]);
    assert_eq!(d.targets, Targets::Classes { labels: vec![0, 2, 1], classes: 3 });
    let by_index = csv::read(&path, &Column::Index(2), TargetKind::Auto).unwrap();
    assert_eq!(by_index, d);
    let first = csv::read(&path, &Column::Index(0), TargetKind::Auto).unwrap();
    assert_eq!(first.features, ndarray::array![[2.0f64, 0.0], [0.4, 2.0], [6.0, 1.0]]);
    assert!(matches!(first.targets, Targets::Values(ref v) if v.column(0).to_vec() == [1.5, 3.0, 5.0]));
}

#[test]
fn tolerates_crlf_bom_quotes_and_blank_lines() {
    let d = csv::parse(
        b"\xEF\xBB\xBF\r\n\"x\",\"label\"\r\n\"1\",0\r\n-2.5,1\r\n\r\n",
        "dir/q.csv",
        &label(),
        TargetKind::Auto,
    )
    .unwrap();
    assert_eq!((d.name.as_str(), d.len(), d.features_per_sample()), ("q", 2, 1));
    assert_eq!(d.features.column(0).to_vec(), [1.0, -2.5]);
}

#[test]
fn values_and_auto() {
    let d = parse("x,label\n1,0.5\n2,7\n", TargetKind::Auto).unwrap();
    assert!(matches!(d.targets, Targets::Values(_)));
    let d = parse("x,label\n1,1\n2,3\n", TargetKind::Values).unwrap();
    assert!(matches!(d.targets, Targets::Values(ref v) if v.column(0).to_vec() == [1.0, 3.0]));
    let d = parse("x,label\n1,1\n2,3\n", TargetKind::Auto).unwrap();
    assert_eq!(d.targets, Targets::Classes { labels: vec![1, 3], classes: 4 });
}

#[test]
fn column_from_str() {
    assert_eq!("3".parse::<Column>().unwrap(), Column::Index(3));
    assert_eq!("label".parse::<Column>().unwrap(), label());
    assert_eq!("3a".parse::<Column>().unwrap(), Column::Name("3a".into()));
    assert!("".parse::<Column>().is_err());
    assert!("99999999999999999999999999".parse::<Column>().unwrap_err().to_string().contains("too large"));
    assert_eq!(Column::Index(4).to_string(), "4");
}

#[test]
fn non_numeric_cell_names_line_and_column() {
    let (e, m) = error("a,b,label\n1,2,0\n1,abc,1\n");
    assert!(matches!(e, DataError::Parse { line: 3, column: 2, .. }), "{e:?}");
    assert_eq!(m, "data/small.csv: line 3, column 2: `abc` is not a number");
}

#[test]
fn empty_cell_is_an_error() {
    let (e, m) = error("a,b,label\n1,,0\n");
    assert!(matches!(e, DataError::Parse { line: 2, column: 2, .. }), "{e:?}");
    assert!(m.contains("empty") && m.contains("missing values"), "{m}");
}

#[test]
fn ragged_row_names_the_line() {
    let (e, m) = error("a,b,label\n1,2,0\n1,2\n");
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    assert!(m.contains("line 3 has 2 cells but the header has 3 columns"), "{m}");
    let (_, m) = error("a,b,label\n1,2,0,4\n");
    assert!(m.contains("line 2 has 4 cells"), "{m}");
}

#[test]
fn nan_and_inf_cells_are_errors() {
    for (cell, column) in [("nan", 1), ("NaN", 1), ("inf", 2), ("-infinity", 2), ("1e309", 1)] {
        let text = if column == 1 { format!("a,b,label\n{cell},2,0\n") } else { format!("a,b,label\n1,{cell},0\n") };
        let (e, m) = error(&text);
        assert!(matches!(e, DataError::Parse { line: 2, column: c, .. } if c == column), "{e:?}");
        assert!(
            m.contains(&format!("`{cell}`")) && (m.contains("not a finite number") || m.contains("too large")),
            "{m}"
        );
    }
    let (e, _) = error("a,label\n1,nan\n");
    assert!(matches!(e, DataError::Parse { line: 2, column: 2, .. }), "{e:?}");
}

#[test]
fn unknown_target_column_lists_the_header() {
    let e = csv::parse(b"sepal,petal,species\n1,2,0\n", "iris.csv", &label(), TargetKind::Auto).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("no column `label`") && m.contains("`sepal`, `petal`, `species`"), "{m}");
    let e = csv::parse(b"a,b\n1,2\n", "x.csv", &Column::Index(2), TargetKind::Auto).unwrap_err().to_string();
    assert!(e.contains("index 2 is out of range") && e.contains("2 column(s)"), "{e}");
    let e = csv::parse(b"a,a\n1,2\n", "x.csv", &Column::Name("a".into()), TargetKind::Auto).unwrap_err().to_string();
    assert!(e.contains("names 2 columns"), "{e}");
}

#[test]
fn negative_class_id_is_an_error() {
    let (e, m) = error("a,b,label\n1,2,0\n3,4,-1\n");
    assert!(matches!(e, DataError::Parse { line: 3, column: 3, .. }), "{e:?}");
    assert!(m.contains("class id `-1` is negative"), "{m}");
}

#[test]
fn non_integer_class_id_is_an_error() {
    let (e, m) = error("a,label,b\n1,0,2\n\n3,1.5,4\n");
    assert!(matches!(e, DataError::Parse { line: 4, column: 2, .. }), "{e:?}");
    assert!(m.contains("class id `1.5` is not an integer"), "{m}");
    let (_, m) = error("a,label\n1,1e9\n");
    assert!(m.contains("too large for a class id"), "{m}");
}

#[test]
fn empty_file_and_header_only_are_errors() {
    for text in ["", "\n\r\n  \n"] {
        let (e, m) = error(text);
        assert!(matches!(e, DataError::Format { .. }), "{e:?}");
        assert!(m.contains("the file is empty") && m.contains("header"), "{m}");
    }
    let (e, m) = error("a,b,label\n\n");
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    assert!(m.contains("no data rows"), "{m}");
}

#[test]
fn single_column_and_other_separators() {
    let (e, m) = error("a;b;label\n1;2;0\n");
    assert!(matches!(e, DataError::Invalid { .. }), "{e:?}: the name does not match a `;` header");
    assert!(m.contains("`a;b;label`"), "{m}");
    let e = csv::parse(b"a;b;label\n1;2;0\n", "x.csv", &Column::Index(0), TargetKind::Auto).unwrap_err().to_string();
    assert!(e.contains("single column") && e.contains("separated by commas"), "{e}");
}

#[test]
fn invalid_utf8_names_the_line() {
    let e = csv::parse(b"a,label\n1,0\n\xff,1\n", "x.csv", &label(), TargetKind::Auto).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    assert!(e.to_string().contains("line 3 is not UTF-8"), "{e}");
}

#[test]
fn missing_file_is_an_io_error() {
    let e = csv::read(std::path::Path::new("/nonexistent/iris.csv"), &label(), TargetKind::Auto).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    assert!(e.to_string().starts_with("/nonexistent/iris.csv: "), "{e}");
}

#[test]
fn features_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inputs.csv");
    std::fs::write(&path, "a,b\n1,2\n\n3,4.5\n").unwrap();
    let (names, x) = csv::read_features(&path).unwrap();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(x, ndarray::array![[1.0f64, 2.0], [3.0, 4.5]]);
    let (names, x) = csv::parse_features(b"only\n7\n", "one.csv").unwrap();
    assert_eq!((names.len(), x.dim()), (1, (1, 1)));
    let e = csv::parse_features(b"a,b\n1,x\n", "in.csv").unwrap_err();
    assert!(matches!(e, DataError::Parse { line: 2, column: 2, .. }), "{e:?}");
    assert!(matches!(csv::parse_features(b"a,b\n", "in.csv"), Err(DataError::Format { .. })));
}

#[test]
fn the_target_is_checked_before_the_rows() {
    let e = csv::parse(b"a,b\n1,x\n", "x.csv", &label(), TargetKind::Auto).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e:?}");
}

/// Data are held in f64, so f64 training sees the file's numbers, not their f32 roundings, and
/// the scaler is fitted and applied in f64 (with f32 storage, 0.1 came back as 0.10000000149…).
#[test]
fn values_and_scaling_are_kept_in_f64() {
    let text = "a,b,label\n0.1,1e-10,0\n0.2,3.0000000001,1\n0.3,1e300,0\n";
    let mut d = parse(text, TargetKind::Classes).unwrap();
    assert_eq!(d.features.column(0).to_vec(), [0.1, 0.2, 0.3]);
    assert_eq!(d.features[[1, 1]], 3.0000000001);
    assert_eq!(d.features[[2, 1]], 1e300, "beyond f32's range, fine in f64");
    let s = nabla_data::scale::Scaler::fit(nabla_data::scale::Scaling::Standard, d.features.view());
    let mean = (0.1 + 0.2 + 0.3) / 3.0;
    assert_eq!(s.offset[0], mean);
    let sd = ((0.1f64 - mean).powi(2) + (0.2f64 - mean).powi(2) + (0.3f64 - mean).powi(2)) / 3.0;
    assert_eq!(s.scale[0], 1.0 / sd.sqrt());
    s.apply(&mut d).unwrap();
    assert_eq!(d.features[[0, 0]], (0.1 - mean) * (1.0 / sd.sqrt()));
}
