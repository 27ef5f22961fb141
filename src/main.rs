//! The `kakoi` binary: parse arguments, run, and map every failure to an exit code in one
//! place (see `cli::exit`).

use clap::Parser;

fn main() {
    let cli = kakoi::cli::Cli::parse();
    if let Err(f) = kakoi::cli::run(cli) {
        if let Some(m) = f.message {
            eprintln!("error: {m}");
        }
        std::process::exit(f.code);
    }
}
