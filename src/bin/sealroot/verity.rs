//! fs-verity subcommands, compatible with fsverity-utils 1.5's `fsverity`:
//! `digest`, `enable`, `measure`, `dump-metadata`, plus `show-signature`.
//!
//! Output formats and exit codes follow `fsverity` so scripts can switch
//! tools: digests print as `sha256:<hex> FILE`, errors go to stderr with
//! exit status 1, usage errors exit 2. Processing stops at the first file
//! that fails, as `fsverity` does.

use sealroot::atomic::{self, Mode};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use sealroot::verity::digest::{self, MerkleOutput};
use sealroot::verity::ioctl::{MetadataType, VerityFile, io_errno_name};
use sealroot::verity::{
    BlockSize, FormattedDigest, FsVerityDigest, HashAlgorithm, Salt, VerityParams,
};

/// Exit status of `show-signature` when the file has fs-verity but was
/// enabled without a builtin signature.
pub const EXIT_NO_SIGNATURE: u8 = 3;

/// `--hash-alg`, `--block-size`, `--salt`: the parameters that, with the
/// content, determine a file's fs-verity digest. Shared by every subcommand
/// that computes or enables one (`#[command(flatten)]`).
#[derive(Args, Debug, Clone)]
pub struct VerityParamsArgs {
    /// Merkle tree hash algorithm: sha256 or sha512. `sign` also uses it as
    /// the PKCS#7 digest algorithm, as `fsverity sign` does.
    #[arg(long = "hash-alg", value_name = "HASH_ALG", default_value = "sha256")]
    pub hash_alg: HashAlgorithm,

    /// Merkle tree block size in bytes: a power of two from 1024 to 65536.
    /// The kernel only accepts sizes up to the page size and the
    /// filesystem block size; 4096 works everywhere.
    #[arg(long = "block-size", value_name = "BLOCK_SIZE", default_value = "4096")]
    pub block_size: BlockSize,

    /// Salt prepended to every hashed block, as hex (at most 32 bytes).
    #[arg(long, value_name = "SALT", value_parser = Salt::from_hex)]
    pub salt: Option<Salt>,
}

impl VerityParamsArgs {
    pub fn params(&self) -> VerityParams {
        VerityParams {
            algorithm: self.hash_alg,
            block_size: self.block_size,
            salt: self.salt.clone().unwrap_or_default(),
        }
    }
}

const DIGEST_AFTER_HELP: &str = "\
Output is `ALG:HEX FILE` per file, in the order given, exactly as `fsverity digest` prints it.
Files are hashed in parallel on all cores, and a file of 8 MiB or more is itself cut into 4 MiB
segments hashed in parallel (-j1: one thread for everything); the first unreadable file stops the
run (exit 1).

Examples:
  sealroot digest /usr/bin/bash
  sealroot digest --compact --hash-alg=sha512 --block-size=1024 --salt=0102 FILE
  sealroot digest --for-builtin-sig FILE      # the bytes `sealroot sign` / `fsverity sign` sign
  sealroot digest --json objects/*/*          # [{\"file\":..., \"digest\":\"sha256:...\", ...}]
  sealroot digest --out-merkle-tree=t --out-descriptor=d FILE";

/// Compute the fs-verity digest of files, like `fsverity digest`.
#[derive(Args, Debug)]
#[command(after_long_help = DIGEST_AFTER_HELP)]
pub struct DigestArgs {
    /// Files to digest.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    #[command(flatten)]
    params: VerityParamsArgs,

    /// Print only the hex digest, without algorithm and file name.
    #[arg(long)]
    compact: bool,

    /// Print the digest as the kernel's `struct fsverity_formatted_digest`
    /// ("FSVerity", algorithm, size, digest) in hex: what a builtin
    /// signature signs.
    #[arg(long = "for-builtin-sig")]
    for_builtin_sig: bool,

    /// Write the Merkle tree (the layout FS_IOC_READ_VERITY_METADATA
    /// returns) to this file. Only with a single FILE.
    #[arg(long = "out-merkle-tree", value_name = "FILE")]
    out_merkle_tree: Option<PathBuf>,

    /// Write the 256-byte fs-verity descriptor to this file. Only with a
    /// single FILE.
    #[arg(long = "out-descriptor", value_name = "FILE")]
    out_descriptor: Option<PathBuf>,

    /// Print a JSON array of objects instead of text.
    #[arg(long, conflicts_with_all = ["compact", "for_builtin_sig"])]
    json: bool,

    /// Use at most this many threads (default: one per CPU).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Serialize)]
struct DigestJson {
    file: String,
    digest: String,
    hash_algorithm: &'static str,
    block_size: u32,
    salt: String,
    data_size: u64,
    formatted_digest: String,
}

pub fn digest(args: DigestArgs) -> anyhow::Result<ExitCode> {
    let params = args.params.params();
    let keep_tree = args.out_merkle_tree.is_some();
    if (keep_tree || args.out_descriptor.is_some()) && args.files.len() != 1 {
        eprintln!(
            "sealroot: error: --out-merkle-tree and --out-descriptor need exactly one FILE (got {})",
            args.files.len()
        );
        return Ok(ExitCode::from(2));
    }
    let hash = |path: &PathBuf| {
        digest::digest_file_full(&params, path, keep_tree).map_err(|e| {
            anyhow::anyhow!(
                "cannot read '{}' to compute its fs-verity digest: {}: {e}",
                path.display(),
                io_errno_name(&e)
            )
        })
    };
    let results: Vec<anyhow::Result<MerkleOutput>> = match args.jobs {
        Some(1) => args.files.iter().map(hash).collect(),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .context("cannot start worker threads")?
            .install(|| args.files.par_iter().map(hash).collect()),
        None => args.files.par_iter().map(hash).collect(),
    };

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut json = Vec::new();
    for (path, result) in args.files.iter().zip(results) {
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                out.flush()?;
                return Err(e);
            }
        };
        if let Some(tree_path) = &args.out_merkle_tree {
            let tree = output.tree.as_deref().unwrap_or_default();
            atomic::write(tree_path, Mode::Umask, tree)?;
        }
        if let Some(desc_path) = &args.out_descriptor {
            atomic::write(desc_path, Mode::Umask, &output.descriptor.to_bytes())?;
        }
        let formatted = hex::encode(FormattedDigest::new(output.digest).to_bytes());
        if args.json {
            json.push(DigestJson {
                file: path.display().to_string(),
                digest: output.digest.to_string(),
                hash_algorithm: params.algorithm.name(),
                block_size: params.block_size.get(),
                salt: hex::encode(params.salt.as_bytes()),
                data_size: output.descriptor.data_size,
                formatted_digest: formatted,
            });
            continue;
        }
        let shown = if args.for_builtin_sig {
            formatted
        } else if args.compact {
            output.digest.to_hex()
        } else {
            output.digest.to_string()
        };
        if args.compact {
            writeln!(out, "{shown}")?;
        } else {
            writeln!(out, "{shown} {}", path.display())?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

const ENABLE_AFTER_HELP: &str = "\
The file is opened read-only: the kernel refuses (ETXTBSY) while anyone has it open for writing.
Once enabled, the file can never be written again; its digest is `sealroot measure FILE`.
Errors name the kernel's errno (EOPNOTSUPP, ENOKEY, EKEYREJECTED, EBADMSG, EPERM, ...) and say
what to do.

Examples:
  sealroot enable FILE
  sealroot enable --signature=FILE.sig FILE   # builtin signature from `sealroot sign`
  sealroot enable --hash-alg=sha512 --block-size=4096 --salt=00ff FILE";

/// Enable fs-verity on a file, like `fsverity enable`.
#[derive(Args, Debug)]
#[command(after_long_help = ENABLE_AFTER_HELP)]
pub struct EnableArgs {
    /// The file to seal.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    #[command(flatten)]
    params: VerityParamsArgs,

    /// Builtin signature to attach: DER PKCS#7 over the formatted digest
    /// (from `sealroot sign` or `fsverity sign`). The kernel checks it
    /// against the .fs-verity keyring.
    #[arg(long, value_name = "SIGFILE")]
    signature: Option<PathBuf>,
}

pub fn enable(args: EnableArgs) -> anyhow::Result<ExitCode> {
    let signature = args
        .signature
        .as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read signature file '{}': {}: {e}",
                    p.display(),
                    io_errno_name(&e)
                )
            })
        })
        .transpose()?;
    let file = VerityFile::open(&args.file)?;
    file.enable(&args.params.params(), signature.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

const MEASURE_AFTER_HELP: &str = "\
Prints the digest the kernel holds for each verity file (constant time), in the same format as
`sealroot digest`. A file without fs-verity fails with ENODATA (exit 1).

Examples:
  sealroot measure /sysroot/objects/ab/cdef...
  sealroot measure --compact FILE
  sealroot measure --json FILE...";

/// Show the fs-verity digest of verity files, like `fsverity measure`.
#[derive(Args, Debug)]
#[command(after_long_help = MEASURE_AFTER_HELP)]
pub struct MeasureArgs {
    /// Files with fs-verity enabled.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Print only the hex digest.
    #[arg(long)]
    compact: bool,

    /// Print a JSON array of {"file", "digest"} objects.
    #[arg(long, conflicts_with = "compact")]
    json: bool,
}

#[derive(Serialize)]
struct MeasureJson {
    file: String,
    digest: String,
}

pub fn measure(args: MeasureArgs) -> anyhow::Result<ExitCode> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut json = Vec::new();
    for path in &args.files {
        let digest: FsVerityDigest = match VerityFile::open(path).and_then(|f| f.measure()) {
            Ok(d) => d,
            Err(e) => {
                out.flush()?;
                return Err(e.into());
            }
        };
        if args.json {
            json.push(MeasureJson {
                file: path.display().to_string(),
                digest: digest.to_string(),
            });
        } else if args.compact {
            writeln!(out, "{}", digest.to_hex())?;
        } else {
            writeln!(out, "{digest} {}", path.display())?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

const DUMP_AFTER_HELP: &str = "\
Writes the raw bytes to stdout. TYPE is merkle_tree (root level first), descriptor (256 bytes,
sig_size 0) or signature (the builtin signature, DER PKCS#7; fails with ENODATA if there is none).
Needs Linux 5.12 or later.

Examples:
  sealroot dump-metadata descriptor FILE | xxd
  sealroot dump-metadata merkle_tree FILE --offset=0 --length=4096 > first-block";

/// Dump a verity file's metadata, like `fsverity dump_metadata`.
#[derive(Args, Debug)]
#[command(after_long_help = DUMP_AFTER_HELP)]
pub struct DumpMetadataArgs {
    /// merkle_tree, descriptor or signature.
    #[arg(value_name = "TYPE")]
    kind: MetadataType,

    /// A file with fs-verity enabled.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Byte offset into the item to start at (with --length).
    #[arg(long, requires = "length")]
    offset: Option<u64>,

    /// Number of bytes to dump (with --offset); fewer at the end of the item.
    #[arg(long, requires = "offset")]
    length: Option<u64>,
}

pub fn dump_metadata(args: DumpMetadataArgs) -> anyhow::Result<ExitCode> {
    let file = VerityFile::open(&args.file)?;
    let mut out = io::stdout().lock();
    match (args.offset, args.length) {
        (Some(mut offset), Some(mut remaining)) => {
            let mut buf = vec![0u8; remaining.min(1 << 20) as usize];
            while remaining > 0 {
                let want = remaining.min(buf.len() as u64) as usize;
                let n = file.read_metadata(args.kind, offset, &mut buf[..want])?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
                offset += n as u64;
                remaining -= n as u64;
            }
        }
        _ => out.write_all(&file.read_metadata_all(args.kind)?)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

const SHOW_SIG_AFTER_HELP: &str = "\
Exit status: 0 when the signature was written, 3 when the file has fs-verity but no builtin
signature, 1 on errors (e.g. ENODATA: the file has no fs-verity at all).

Examples:
  sealroot show-signature FILE | openssl pkcs7 -inform der -print_certs -noout
  sealroot show-signature --out=FILE.sig FILE";

/// Write a verity file's builtin signature (DER PKCS#7).
#[derive(Args, Debug)]
#[command(after_long_help = SHOW_SIG_AFTER_HELP)]
pub struct ShowSignatureArgs {
    /// A file with fs-verity enabled.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Write the DER signature to this file (atomically) instead of stdout.
    #[arg(long, value_name = "SIGFILE")]
    out: Option<PathBuf>,
}

pub fn show_signature(args: ShowSignatureArgs) -> anyhow::Result<ExitCode> {
    let file = VerityFile::open(&args.file)?;
    let Some(sig) = file.read_signature()? else {
        eprintln!(
            "sealroot: '{}' has fs-verity but no builtin signature (enabled without --signature)",
            args.file.display()
        );
        return Ok(ExitCode::from(EXIT_NO_SIGNATURE));
    };
    match &args.out {
        Some(path) => atomic::write(path, Mode::Umask, &sig)?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&sig)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
