//! `sealroot`: the host-side companion. Builds, signs, verifies and deploys
//! sealed composefs roots; manages fs-verity keys and the kernel keyring.
//!
//! One file per subcommand group; each exposes an `Args` type (clap) and a
//! `run` function. This file only dispatches and reports errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod keygen;
mod keyring;
mod sign;

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
enum Command {
    Sign(sign::SignArgs),
    Verify(sign::VerifyArgs),
    Keyring(keyring::KeyringArgs),
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Sign(args) => sign::run_sign(args),
        Command::Verify(args) => sign::run_verify(args),
        Command::Keyring(args) => keyring::run(args),
        Command::Keygen(args) => keygen::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealroot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
