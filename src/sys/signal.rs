//! Dying of SIGPIPE the way Unix tools do. Rust programs start with SIGPIPE
//! ignored (so a write to a closed pipe returns EPIPE instead of killing
//! the process); a command whose reader went away (`sealroot ... | head`)
//! should still end quietly, with the status shells expect (128 + 13).
//! Resetting the disposition only at that moment keeps EPIPE an error for
//! every other pipe (e.g. the stdin of a `--sign-command` child).

/// Ends the process by SIGPIPE (default action: terminate, no core).
pub fn exit_by_sigpipe() -> ! {
    // SAFETY: signal(2) with a valid signal number and SIG_DFL installs no
    // handler code; raise(3) sends the signal to this thread. Nothing here
    // touches memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached unless SIGPIPE is blocked: exit with the status a shell
    // would report for death by SIGPIPE.
    std::process::exit(128 + libc::SIGPIPE)
}
