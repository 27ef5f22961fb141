//! The `kakoi` binary: parse arguments, run, and map every failure to an exit code in one
//! place (see `cli::exit`).

use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`kakoi disasm … | head`), as Unix tools do, instead
    // of panicking on the failed write.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = kakoi::cli::Cli::parse();
    if let Err(f) = kakoi::cli::run(cli) {
        if let Some(m) = f.message {
            eprintln!("error: {m}");
        }
        std::process::exit(f.code);
    }
}
