#![no_main]
// See kakoi::fuzzing::policy_text for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kakoi::fuzzing::policy_text(data));
