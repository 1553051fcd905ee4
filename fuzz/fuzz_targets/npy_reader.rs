//! `.npy` arrays: the reader on any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wunet::fuzz::npy_bytes(data);
});
