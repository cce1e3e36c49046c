//! `.npy` parsing must never panic: any input is parsed or rejected with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla_data::npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = npy::parse(data, "fuzz.npy") {
        assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
    }
});
