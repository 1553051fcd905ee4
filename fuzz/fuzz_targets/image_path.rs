//! Images: decoding (with the same limits as the CLI) and conversion to the model's input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wunet::fuzz::image_bytes(data);
});
