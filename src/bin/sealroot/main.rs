//! `sealroot`: the host-side companion. Builds, signs, verifies and deploys
//! sealed composefs roots; manages fs-verity keys and the kernel keyring.
//!
//! One file per subcommand group; each exposes an `Args` type (clap) and a
//! `run` function. This file only dispatches and reports errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sealroot",
    version,
    about = "Seal Linux root filesystems with composefs, fs-verity and kernel-checked signatures",
    long_about = None,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {};
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealroot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
