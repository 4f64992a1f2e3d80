//! Any bytes given to the bundle loader: an error or a model, never a panic or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let device = burn::tensor::Device::flex();
    if let Ok(bundle) = xinsheng_core::Bundle::from_bytes("fuzz", data.to_vec(), &device) {
        // A bundle that loads must classify.
        let classifier = xinsheng_core::Classifier::new(bundle, device);
        let _ = classifier.predict(&["好", ""]);
    }
});
