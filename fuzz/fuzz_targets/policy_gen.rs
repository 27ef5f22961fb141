#![no_main]
// See kakoi::fuzzing::policy_gen: generated valid policies compile to programs equal to
// the IR.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kakoi::fuzzing::policy_gen(data);
});
