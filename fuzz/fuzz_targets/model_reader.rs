//! Model files: the float reader and the int8 reader on any bytes; what they accept is prepared
//! for the CPU engines and run on a tiny input (no panic, bounded memory).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wunet::fuzz::model_bytes(data);
});
