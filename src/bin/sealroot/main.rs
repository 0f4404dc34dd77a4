//! `sealroot`: the host-side companion. Builds, signs, verifies and deploys
//! sealed composefs roots; manages fs-verity keys and the kernel keyring.
//!
//! One file per subcommand group; each exposes an `Args` type (clap) and a
//! `run` function. This file only dispatches and reports errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod composefs;

#[derive(Parser)]
#[command(
    name = "sealroot",
    version,
    about = "Seal Linux root filesystems with composefs, fs-verity and kernel-checked signatures",
    long_about = None,
    propagate_version = true,
    infer_long_args = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a composefs EROFS image (drop-in for mkcomposefs)
    Mkcomposefs(composefs::MkcomposefsArgs),
    /// Read composefs images: dump, ls, objects, missing-objects, measure-file
    Inspect(composefs::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Mkcomposefs(args) => composefs::mkcomposefs(args),
        Command::Inspect(args) => composefs::inspect(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealroot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
