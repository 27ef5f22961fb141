#![no_main]
// See kakoi::fuzzing::apparmor_text for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kakoi::fuzzing::apparmor_text(data));
