//! ONNX models: the protobuf reader, the importer, plan-time folding and shape inference, and a
//! run of whatever is accepted, on any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wunet::fuzz::onnx_bytes(data);
});
