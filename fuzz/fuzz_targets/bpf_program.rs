#![no_main]
// See kakoi::fuzzing::bpf_program for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kakoi::fuzzing::bpf_program(data));
