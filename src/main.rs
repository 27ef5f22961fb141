//! The `kakoi` binary: parse arguments, run, and map every failure to an exit code in one
//! place (see `kakoi::exit`).
//!
//! The entry point is C's `main`, not Rust's `fn main`: the runtime set-up Rust runs
//! before its `main` (the main thread's stack bounds, which glibc reads from
//! /proc/self/maps; an alternate signal stack and SIGSEGV/SIGBUS handlers for its
//! stack-overflow message; SIGPIPE ignored) is a dozen system calls and a /proc read on
//! every start, a measurable share of a launch (see bench/REPORT.md). kakoi wants
//! SIGPIPE's default anyway, and a stack overflow is then a plain SIGSEGV. Arguments still
//! reach `std::env::args`: glibc hands them to the standard library's initializer.
#![deny(unsafe_code)]
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use clap::Parser;

/// The process's entry point (called by the C library's start-up code). Not in the test
/// build, whose harness has a `main` of its own.
#[cfg(not(test))]
// The one exemption from `deny(unsafe_code)` here: exporting the C symbol `main`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // Die quietly on a closed pipe (`kakoi disasm … | head`), as Unix tools do, instead of
    // a failed write: SIGPIPE keeps the default disposition it had at exec (kakoi's own
    // launcher resets it for its payloads too).
    let code = std::panic::catch_unwind(|| {
        // Invoked as `kakoi-runtime` (a link `make install` makes): runc's command line.
        let argv0 = std::env::args_os().next().unwrap_or_default();
        if std::path::Path::new(&argv0).file_name() == Some(std::ffi::OsStr::new("kakoi-runtime")) {
            return kakoi::oci::main(std::env::args());
        }
        let cli = kakoi::cli::Cli::parse();
        match kakoi::cli::run(cli) {
            Ok(()) => 0,
            Err(f) => {
                if let Some(m) = f.message {
                    eprintln!("error: {m}");
                }
                f.code
            }
        }
    })
    // A panic has printed its message; 101 as Rust's runtime would exit. (The release
    // binary, built with `panic = "abort"`, aborts at the panic instead.)
    .unwrap_or(kakoi::exit::PANIC);
    // Flushes stdout, which returning to the C library would not.
    std::process::exit(code)
}
