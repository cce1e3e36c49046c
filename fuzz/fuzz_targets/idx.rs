//! IDX parsing must never panic: any input is parsed or rejected with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla_data::idx;

fuzz_target!(|data: &[u8]| {
    if let Ok(x) = idx::parse_images(data, "fuzz") {
        assert_eq!(x.len() + 16, data.len());
    }
    if let Ok(labels) = idx::parse_labels(data, "fuzz") {
        assert_eq!(labels.len() + 8, data.len());
    }
});
