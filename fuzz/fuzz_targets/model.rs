//! Model and checkpoint files are untrusted input: any bytes are loaded or rejected with an
//! error — header, metadata (architecture, optimizer, settings, run state) and tensors alike —
//! and nothing panics, aborts or allocates beyond what the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla_core::checkpoint::{CHECKPOINT_FORMAT, MODEL_FORMAT, StoredFile, network_from};
use nabla_core::{Reference, Trainer};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = StoredFile::from_bytes(data.to_vec(), "fuzz", MODEL_FORMAT) {
        if let Ok((mut net, _)) = network_from::<f32, _>(Reference, file) {
            let x = vec![0.5f32; net.architecture().inputs()];
            assert!(net.predict(&x).is_ok());
        }
    }
    if let Ok(file) = StoredFile::from_bytes(data.to_vec(), "fuzz", CHECKPOINT_FORMAT) {
        if let Ok((t, _)) = Trainer::<f64, _>::resume_from(Reference, file) {
            assert!(t.live_parameters().is_ok());
        }
    }
});
