//! `sealroot`: the host-side companion. Builds, signs, verifies and deploys
//! sealed composefs roots; manages fs-verity keys and the kernel keyring.
//!
//! One file per subcommand group; each exposes an `Args` type (clap) and a
//! `run` function. This file only dispatches and reports errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod composefs;
mod deploy;
mod ipe;
mod keygen;
mod keyring;
mod mount;
mod oci;
mod repo;
mod sign;
mod verity;

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
    /// Compute files' fs-verity digests (like `fsverity digest`).
    Digest(verity::DigestArgs),
    /// Enable fs-verity on a file (like `fsverity enable`).
    Enable(verity::EnableArgs),
    /// Show verity files' digests from the kernel (like `fsverity measure`).
    Measure(verity::MeasureArgs),
    /// Dump fs-verity metadata (like `fsverity dump_metadata`).
    DumpMetadata(verity::DumpMetadataArgs),
    /// Write a verity file's builtin signature (DER PKCS#7).
    ShowSignature(verity::ShowSignatureArgs),
    /// Read OCI images: inspect, verify
    #[command(long_about = oci::LONG_HELP)]
    Oci(oci::OciArgs),
    /// Build a composefs EROFS image (drop-in for mkcomposefs)
    Mkcomposefs(composefs::MkcomposefsArgs),
    /// Read composefs images: dump, ls, objects, missing-objects, measure-file
    Inspect(composefs::InspectArgs),
    /// Mount a composefs image read-only (like mount.composefs)
    Mount(mount::MountArgs),
    Sign(sign::SignArgs),
    Verify(sign::VerifyArgs),
    Keyring(keyring::KeyringArgs),
    Keygen(keygen::KeygenArgs),
    /// Deploy a sealed OCI image into a sysroot (prints the kernel argument)
    Deploy(deploy::DeployArgs),
    /// Maintain a deployed repository: init, list, fsck, gc, enable-verity
    Repo(repo::RepoArgs),
    /// IPE policy for a sealed system: policy, sign, show
    Ipe(ipe::IpeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Digest(args) => verity::digest(args),
        Command::Enable(args) => verity::enable(args),
        Command::Measure(args) => verity::measure(args),
        Command::DumpMetadata(args) => verity::dump_metadata(args),
        Command::ShowSignature(args) => verity::show_signature(args),
        Command::Oci(args) => oci::run(args),
        Command::Mkcomposefs(args) => composefs::mkcomposefs(args),
        Command::Inspect(args) => composefs::inspect(args),
        Command::Mount(args) => mount::run(args),
        Command::Sign(args) => sign::run_sign(args),
        Command::Verify(args) => sign::run_verify(args),
        Command::Keyring(args) => keyring::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Repo(args) => repo::run(args),
        Command::Ipe(args) => ipe::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealroot: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
