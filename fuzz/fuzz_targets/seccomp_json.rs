#![no_main]
// See kakoi::fuzzing::seccomp_json for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kakoi::fuzzing::seccomp_json(data));
