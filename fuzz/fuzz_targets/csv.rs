//! CSV parsing must never panic: any input is parsed (into a checked data set) or rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla_data::csv::{self, Column, TargetKind};

fuzz_target!(|data: &[u8]| {
    for target in [Column::Index(0), Column::Name("label".into())] {
        for kind in [TargetKind::Classes, TargetKind::Values, TargetKind::Auto] {
            if let Ok(d) = csv::parse(data, "fuzz.csv", &target, kind) {
                assert!(d.features_per_sample() >= 1 && !d.is_empty());
                assert!(d.features.iter().all(|v| v.is_finite()));
            }
        }
    }
    if let Ok((names, x)) = csv::parse_features(data, "fuzz.csv") {
        assert_eq!(names.len(), x.ncols());
        assert!(x.nrows() >= 1 && x.iter().all(|v| v.is_finite()));
    }
});
