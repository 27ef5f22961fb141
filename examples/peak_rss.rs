//! `peak_rss CMD [ARGS…]`: run CMD, then print its exit code and the peak resident set size
//! (KiB) of it and the descendants it waited for (`getrusage(RUSAGE_CHILDREN)`). Used by
//! `make bench`: a small launcher, so the copy of the measuring process that exists between
//! fork and exec (counted by the kernel) stays far below what is measured.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: peak_rss CMD [ARGS…]");
        std::process::exit(2);
    };
    let status = std::process::Command::new(cmd)
        .args(rest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            eprintln!("peak_rss: {cmd}: {e}");
            std::process::exit(2)
        });
    // SAFETY: `rusage` is plain data; zero is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for the call.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    println!("{} {}", status.code().unwrap_or(-1), ru.ru_maxrss);
}
