#![no_main]
// See kakoi::fuzzing::bundle_files for what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kakoi::fuzzing::bundle_files(data));
