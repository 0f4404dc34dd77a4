//! `sealroot mkcomposefs` (a drop-in for `mkcomposefs`) and
//! `sealroot inspect` (the role of `composefs-info`).

use sealroot::atomic::{self, Mode};
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sealroot::dumpfile::{self, ParseOptions};
use sealroot::erofs::{self, WriteOptions, reader};
use sealroot::tree::fromdir::{DirOptions, import_dir};
use sealroot::tree::store::ObjectStore;
use sealroot::tree::{Content, Tree};
use sealroot::verity::{VerityParams, digest};

pub const MKCOMPOSEFS_LONG: &str = "\
Builds a composefs EROFS image from a directory or a composefs-dump(5) file, \
byte for byte what mkcomposefs 1.0 writes for the same input (same options, \
same defaults).

From a directory, regular files larger than 64 bytes are referenced by their \
fs-verity digest (XX/rest-of-hex) and, with --digest-store, copied there \
(reflinked where possible, fs-verity enabled where the filesystem supports \
it); hashing and copying use all cores. Smaller files are stored in the image.

The image is written atomically (temporary file + rename); IMAGE `-` writes \
to standard output. With --from-file, SOURCE `-` reads standard input. The \
environment variable CFS_PARSE_STRICT (or --strict) selects strict dumpfile \
parsing.

Examples:
  sealroot mkcomposefs --digest-store=/srv/objects rootfs/ rootfs.cfs
  sealroot mkcomposefs --from-file image.dump image.cfs
  composefs-info dump old.cfs | sealroot mkcomposefs --from-file - new.cfs
  sealroot mkcomposefs --print-digest-only --from-file image.dump";

/// Options of `sealroot mkcomposefs`, named as mkcomposefs names them.
#[derive(Args, Debug)]
pub struct MkcomposefsArgs {
    /// Directory to image, or dumpfile with --from-file (`-`: stdin)
    source: PathBuf,
    /// Image to write (`-`: stdout); omitted with --print-digest-only
    image: Option<PathBuf>,
    /// Store content files in this directory (by fs-verity digest)
    #[arg(long, value_name = "PATH")]
    digest_store: Option<PathBuf>,
    /// Make all mtimes zero
    #[arg(long)]
    use_epoch: bool,
    /// Don't store device nodes
    #[arg(long)]
    skip_devices: bool,
    /// Don't store file xattrs
    #[arg(long, conflicts_with = "user_xattrs")]
    skip_xattrs: bool,
    /// Only store user.* xattrs
    #[arg(long)]
    user_xattrs: bool,
    /// Print the fs-verity digest of the image
    #[arg(long)]
    print_digest: bool,
    /// Print the digest of the image, don't write the image
    #[arg(long)]
    print_digest_only: bool,
    /// The source is a dump file, not a directory
    #[arg(long)]
    from_file: bool,
    /// Use this minimal format version (default 0)
    #[arg(long, value_name = "N")]
    min_version: Option<u32>,
    /// Use this maximum format version (default 1)
    #[arg(long, value_name = "N")]
    max_version: Option<u32>,
    /// Threads for reading, hashing and copying files (default: all cores)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Strict dumpfile parsing (as CFS_PARSE_STRICT)
    #[arg(long)]
    strict: bool,
}

pub fn mkcomposefs(args: MkcomposefsArgs) -> anyhow::Result<ExitCode> {
    if args.source.as_os_str().is_empty() {
        bail!("empty source path");
    }
    let image = match (&args.image, args.print_digest_only) {
        (Some(_), true) => bail!("cannot give an image path with --print-digest-only"),
        (None, false) => bail!("no image path given (use `-` for standard output)"),
        (image, _) => image.clone(),
    };
    // mkcomposefs: giving either version option resets the other's default to 0.
    let opts = if args.min_version.is_some() || args.max_version.is_some() {
        WriteOptions {
            min_version: args.min_version.unwrap_or(0),
            max_version: args.max_version.unwrap_or(0),
        }
    } else {
        WriteOptions::default()
    };
    let tree = if args.from_file {
        let strict = args.strict || std::env::var_os("CFS_PARSE_STRICT").is_some();
        let popts = ParseOptions { strict };
        if args.source == Path::new("-") {
            dumpfile::parse(io::stdin().lock(), popts)
                .context("parsing the dumpfile on standard input")?
        } else {
            let f = fs::File::open(&args.source)
                .with_context(|| format!("opening {}", args.source.display()))?;
            dumpfile::parse(io::BufReader::with_capacity(1 << 20, f), popts)
                .with_context(|| format!("parsing {}", args.source.display()))?
        }
    } else {
        let store = match &args.digest_store {
            Some(p) => Some(ObjectStore::open(p)?),
            None => None,
        };
        let dopts = DirOptions {
            use_epoch: args.use_epoch,
            skip_xattrs: args.skip_xattrs,
            user_xattrs: args.user_xattrs,
            skip_devices: args.skip_devices,
            threads: args.threads.map(|t| t as usize),
            store,
        };
        import_dir(&args.source, &dopts)?.0
    };
    let digest = match &image {
        None => erofs::image_digest(&tree, &opts)?,
        Some(p) if p == Path::new("-") => {
            if io::stdout().is_terminal() {
                bail!("standard output is a terminal; refusing to write an image to it");
            }
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let d = erofs::write_image(&tree, &opts, &mut out)?;
            out.flush()?;
            d
        }
        Some(p) => atomic::write_with(p, Mode::Umask, |w| {
            erofs::write_image(&tree, &opts, w).map_err(io::Error::other)
        })?,
    };
    if args.print_digest || args.print_digest_only {
        outln!("{}", digest.to_hex());
    }
    Ok(ExitCode::SUCCESS)
}

pub const INSPECT_LONG: &str = "\
Reads composefs EROFS images (the role of composefs-info): print the tree as \
a composefs-dump(5) file, list it, list the objects it references (or those \
missing from an object store), or print files' fs-verity digests. Images are \
untrusted input: a corrupt image is reported, never trusted.

Examples:
  sealroot inspect dump image.cfs > image.dump
  sealroot inspect objects --json image.cfs
  sealroot inspect missing-objects --basedir /srv/objects image.cfs
  sealroot inspect measure-file image.cfs";

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(subcommand)]
    command: InspectCommand,
}

#[derive(Subcommand, Debug)]
enum InspectCommand {
    /// Print images as composefs-dump(5) (`composefs-info dump`)
    Dump(ImageArgs),
    /// List paths, symlink targets and backing files (`composefs-info ls`)
    Ls(ImageArgs),
    /// List the backing objects images reference, sorted
    Objects(ObjectArgs),
    /// List referenced objects missing from --basedir
    MissingObjects(ObjectArgs),
    /// Print the fs-verity (sha256) digest of files
    MeasureFile {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON output: [{"file": ..., "digest": "sha256:..."}]
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct ImageArgs {
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Only these top-level entries (repeatable)
    #[arg(long, value_name = "NAME")]
    filter: Vec<String>,
}

#[derive(Args, Debug)]
struct ObjectArgs {
    #[command(flatten)]
    images: ImageArgs,
    /// Object store to check against
    #[arg(long, value_name = "DIR")]
    basedir: Option<PathBuf>,
    /// JSON output: a sorted array of object paths
    #[arg(long)]
    json: bool,
}

fn load(path: &Path, filter: &[String]) -> anyhow::Result<Tree> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut tree =
        reader::read_tree(&data).with_context(|| format!("reading image {}", path.display()))?;
    if !filter.is_empty() {
        if let Some(f) = filter.iter().find(|f| f.contains('/')) {
            bail!("--filter takes a single top-level name, not a path: {f}");
        }
        let root = tree.root();
        let drop: Vec<Vec<u8>> = tree
            .entries(root)
            .filter(|e| !filter.iter().any(|f| f.as_bytes() == e.name))
            .map(|e| e.name.to_vec())
            .collect();
        for name in drop {
            tree.unlink(root, &name)?;
        }
    }
    Ok(tree)
}

fn ls(tree: &Tree, out: &mut impl Write) -> io::Result<()> {
    use dumpfile::escape::{Style, escape_into};
    let mut line = Vec::new();
    dumpfile::print::walk(tree, |path, id, is_link| {
        if path == b"/" {
            return Ok(());
        }
        line.clear();
        escape_into(&mut line, path, Style::KeepSpace);
        // composefs-info prints hardlinks as bare paths.
        if !is_link {
            match tree.content(id) {
                Content::Directory => line.extend_from_slice(b"/\t"),
                Content::Symlink(t) => {
                    line.extend_from_slice(b"\t-> ");
                    escape_into(&mut line, t, Style::Standard);
                }
                Content::External {
                    payload: Some(p), ..
                } => {
                    line.extend_from_slice(b"\t@ ");
                    escape_into(&mut line, p, Style::Standard);
                }
                _ => {}
            }
        }
        line.push(b'\n');
        out.write_all(&line)
    })
}

fn objects(args: &ObjectArgs, missing: bool) -> anyhow::Result<()> {
    let mut set = std::collections::BTreeSet::new();
    for img in &args.images.images {
        let tree = load(img, &args.images.filter)?;
        dumpfile::print::walk(&tree, |_, id, is_link| {
            if let (
                false,
                Content::External {
                    payload: Some(p), ..
                },
            ) = (is_link, tree.content(id))
            {
                set.insert(p.to_vec());
            }
            Ok(())
        })?;
    }
    if missing {
        let base = args
            .basedir
            .as_deref()
            .context("missing-objects needs --basedir=DIR")?;
        if !base.is_dir() {
            bail!("--basedir {}: not a directory", base.display());
        }
        set.retain(|p| {
            let rel = String::from_utf8_lossy(p);
            fs::symlink_metadata(base.join(rel.trim_start_matches('/'))).is_err()
        });
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        let list: Vec<String> = set
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        for p in &set {
            out.write_all(p)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        InspectCommand::Dump(a) | InspectCommand::Ls(a) if a.images.is_empty() => {
            bail!("no image given")
        }
        InspectCommand::Dump(a) => {
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            for img in &a.images {
                dumpfile::write_dump(&load(img, &a.filter)?, &mut out)?;
            }
            out.flush()?;
        }
        InspectCommand::Ls(a) => {
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            for img in &a.images {
                ls(&load(img, &a.filter)?, &mut out)?;
            }
            out.flush()?;
        }
        InspectCommand::Objects(a) => objects(&a, false)?,
        InspectCommand::MissingObjects(a) => objects(&a, true)?,
        InspectCommand::MeasureFile { files, json } => {
            let mut results = Vec::new();
            for f in &files {
                let d = digest::digest_file(&VerityParams::sha256(), f)
                    .with_context(|| format!("failed to measure {}", f.display()))?;
                results.push((f, d));
            }
            if json {
                let v: Vec<_> = results
                    .iter()
                    .map(|(f, d)| serde_json::json!({"file": f.display().to_string(), "digest": d.to_string()}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (_, d) in results {
                    outln!("{}", d.to_hex());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
