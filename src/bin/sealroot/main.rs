//! `sealroot`: the host-side companion. Builds, signs, verifies and deploys
//! sealed composefs roots; manages fs-verity keys and the kernel keyring.
//!
//! One file per subcommand group; each exposes an `Args` type (clap) and a
//! `run` function. This file only dispatches and reports errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that ends the process quietly when stdout's reader is gone
/// (`sealroot ... | head`), as Unix tools do, instead of panicking.
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!`, with [`outln!`]'s handling of a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod composefs;
mod deploy;
mod ipe;
mod keygen;
mod keyring;
mod mount;
mod oci;
mod ostree;
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
    infer_long_args = true,
    after_help = "Exit status: 0 success; 1 refused or failed; 2 usage error; 3 unusable input \
                  (missing or malformed file, key, certificate, image). The drop-in commands \
                  (digest, enable, measure, dump-metadata, mkcomposefs, inspect, mount) exit 1 \
                  on any failure, as the tools they replace."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// A variant's doc comment sets both `about` and `long_about`, overriding
// what its argument struct says; the long help lives next to its
// subcommand's code and is named here explicitly.
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
    /// OCI images: inspect, verify, seal, compute-id
    #[command(long_about = oci::LONG_HELP)]
    Oci(oci::OciArgs),
    /// Build a composefs EROFS image (drop-in for mkcomposefs)
    #[command(long_about = composefs::MKCOMPOSEFS_LONG)]
    Mkcomposefs(composefs::MkcomposefsArgs),
    /// Read composefs images: dump, ls, objects, missing-objects, measure-file
    #[command(long_about = composefs::INSPECT_LONG)]
    Inspect(composefs::InspectArgs),
    /// Mount a composefs image read-only (like mount.composefs)
    #[command(long_about = mount::LONG_HELP)]
    Mount(mount::MountArgs),
    Sign(sign::SignArgs),
    Verify(sign::VerifyArgs),
    Keyring(keyring::KeyringArgs),
    Keygen(keygen::KeygenArgs),
    /// Deploy a sealed OCI image into a sysroot (prints the kernel argument)
    #[command(long_about = deploy::DEPLOY_HELP)]
    Deploy(deploy::DeployArgs),
    /// Maintain a deployed repository: init, list, fsck, gc, enable-verity
    #[command(long_about = repo::REPO_HELP)]
    Repo(repo::RepoArgs),
    /// Seal ostree commits: compute-id, seal, verify, deploy, enable-verity
    #[command(long_about = ostree::LONG_HELP)]
    Ostree(ostree::OstreeArgs),
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
        Command::Ostree(args) => ostree::run(args),
        Command::Ipe(args) => ipe::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => sealroot::process::exit_by_sigpipe(),
        Err(err) => {
            eprintln!("sealroot: error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The README's exit status for an error a subcommand did not classify
/// itself: a repository or sysroot that is not there is unusable input (3);
/// anything else failed (1).
pub(crate) fn exit_status(err: &anyhow::Error) -> u8 {
    use sealroot::repo::Error as RepoError;
    let missing = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<RepoError>(),
            Some(RepoError::NotARepository { .. } | RepoError::NoParent { .. })
        )
    });
    if missing {
        sign::EXIT_INPUT
    } else {
        sign::EXIT_REFUSED
    }
}

/// Writes to stdout for [`outln!`] and [`out!`].
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(err) = std::io::stdout().lock().write_fmt(args) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            sealroot::process::exit_by_sigpipe();
        }
        eprintln!("sealroot: error: cannot write to stdout: {err}");
        std::process::exit(1);
    }
}

/// Whether a command failed because stdout's reader went away (writes that
/// go through a `BufWriter` and `?` rather than [`outln!`]).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            // serde_json's writer errors hide their io::Error (source()
            // skips it) but say its kind.
            || cause.downcast_ref::<serde_json::Error>().and_then(|e| e.io_error_kind()) == broken
    })
}
