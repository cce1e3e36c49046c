//! The real files in `shared/data` beside the repository (`../shared/data` from its root), when
//! they are there; each test prints "skipped: …" and passes when they are not.

use std::path::PathBuf;

use nabla_data::csv::{self, Column, TargetKind};
use nabla_data::idx;
use nabla_data::{Targets, Task};

/// `shared/data/<sub>`, or `None` (after printing why) when it is missing.
fn data(sub: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(sub);
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} is not there", p.display());
        None
    }
}

fn histogram(t: &Targets) -> Vec<usize> {
    let Targets::Classes { labels, classes } = t else { panic!("not classes: {t:?}") };
    (0..*classes).map(|c| labels.iter().filter(|&&l| l == c).count()).collect()
}

#[test]
fn iris() {
    let Some(path) = data("sklearn/iris.csv") else { return };
    let d = csv::read(&path, &Column::Name("label".into()), TargetKind::Auto).unwrap();
    assert_eq!((d.name.as_str(), d.len(), d.features_per_sample()), ("iris", 150, 4));
    assert_eq!(d.task(), Task::Classification { classes: 3 });
    assert_eq!(histogram(&d.targets), [50, 50, 50]);
    assert_eq!(d.features.row(0).to_vec(), [5.1, 3.5, 1.4, 0.2]);
    assert_eq!(d, csv::read(&path, &Column::Index(4), TargetKind::Classes).unwrap());
}

#[test]
fn digits() {
    let Some(path) = data("sklearn/digits.csv") else { return };
    let d = csv::read(&path, &Column::Name("label".into()), TargetKind::Classes).unwrap();
    assert_eq!((d.len(), d.features_per_sample()), (1797, 64));
    assert_eq!(histogram(&d.targets), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert!(d.features.iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
}

#[test]
fn diabetes() {
    let Some(path) = data("sklearn/diabetes.csv") else { return };
    let d = csv::read(&path, &Column::Name("target".into()), TargetKind::Auto).unwrap();
    assert_eq!((d.len(), d.features_per_sample()), (442, 10));
    assert_eq!(d.task(), Task::Regression { outputs: 1 });
    let Targets::Values(y) = &d.targets else { unreachable!() };
    let mean = y.iter().sum::<f64>() / 442.0;
    assert!((mean - 152.13).abs() < 0.01, "{mean}");
}

#[test]
fn mnist() {
    let Some(dir) = data("mnist") else { return };
    let (train, test) = idx::load_mnist(&dir).unwrap();
    assert_eq!((train.len(), train.features_per_sample()), (60000, 784));
    assert_eq!((test.len(), test.features_per_sample()), (10000, 784));
    let Targets::Classes { labels, classes: 10 } = &train.targets else { panic!() };
    assert_eq!(labels[..5], [5, 0, 4, 1, 9]);
    let Targets::Classes { labels, classes: 10 } = &test.targets else { panic!() };
    assert_eq!(labels[..5], [7, 2, 1, 0, 4]);
    assert_eq!(histogram(&test.targets), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let mean = train.features.iter().sum::<f64>() / (60000.0 * 784.0);
    assert!((mean - 33.318).abs() < 0.001, "{mean}");
    assert!(train.features.iter().all(|&v| (0.0..=255.0).contains(&v)));
}
