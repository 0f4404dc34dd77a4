//! Cross-checks of `sealroot digest` (and friends) against fsverity-utils'
//! `fsverity digest`: equal output text, equal `--out-merkle-tree` and
//! `--out-descriptor` bytes, equal `--for-builtin-sig` output, and the same
//! exit codes, over every hash algorithm, every block size the kernel
//! knows (1024..65536), with and without salts, on the sizes where Merkle
//! trees change shape (0, 1, B-1, B, B+1, one full level-0 block, two
//! levels, three levels where that fits in 16 MiB).
//!
//! The kernel side (enable, measure, signatures) runs in the VM test bed;
//! here only the host's own behaviour on a plain file is checked.

#[path = "common/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tools::fsverity;

const SEALROOT: &str = env!("CARGO_BIN_EXE_sealroot");
const ALGS: [(&str, u64); 2] = [("sha256", 32), ("sha512", 64)];
const BLOCK_SIZES: [u64; 7] = [1024, 2048, 4096, 8192, 16384, 32768, 65536];
/// The longest salt the kernel allows (32 bytes).
const SALT32: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Files above this are sparse: random bytes at both ends, holes between.
const DENSE_LIMIT: u64 = 1 << 20;
/// Biggest three-level file built (three levels need (B/digest)^2 blocks).
const THREE_LEVEL_LIMIT: u64 = 16 << 20;

fn sealroot() -> Command {
    Command::new(SEALROOT)
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.code().is_some(),
        "{cmd:?} died from a signal: {out:?}"
    );
    out
}

/// Runs a command that must succeed; returns stdout.
fn ok(cmd: Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{desc} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Deterministic pseudo-random bytes (xorshift64*), seeded per file.
fn fill(buf: &mut [u8], mut seed: u64) {
    seed |= 1;
    for chunk in buf.chunks_mut(8) {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let v = seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A directory of test files, one per size, created on demand.
struct Corpus {
    dir: tempfile::TempDir,
    files: BTreeMap<u64, PathBuf>,
}

impl Corpus {
    fn new() -> Self {
        Corpus {
            dir: tempfile::tempdir().unwrap(),
            files: BTreeMap::new(),
        }
    }

    fn file(&mut self, size: u64) -> PathBuf {
        if let Some(p) = self.files.get(&size) {
            return p.clone();
        }
        let path = self.dir.path().join(format!("f{size}"));
        let mut f = File::create(&path).unwrap();
        if size <= DENSE_LIMIT {
            let mut data = vec![0u8; size as usize];
            fill(&mut data, size);
            f.write_all(&data).unwrap();
        } else {
            let mut edge = vec![0u8; 65536];
            fill(&mut edge, size);
            f.write_all(&edge).unwrap();
            f.seek(SeekFrom::Start(size - edge.len() as u64)).unwrap();
            fill(&mut edge, size ^ 0xabcd);
            f.write_all(&edge).unwrap();
        }
        assert_eq!(f.metadata().unwrap().len(), size);
        self.files.insert(size, path.clone());
        path
    }
}

/// Sizes where a Merkle tree with block size `bs` and `ds`-byte digests
/// changes shape: empty, one byte, around one block, exactly one full
/// level-0 block of digests (k blocks, k = bs / ds), one more (two levels),
/// and k^2 + 1 blocks (three levels) when that stays small.
fn shape_sizes(bs: u64, ds: u64) -> Vec<u64> {
    let k = bs / ds;
    let mut sizes = vec![0, 1, bs - 1, bs, bs + 1, k * bs, k * bs + 1];
    if k * k * bs < THREE_LEVEL_LIMIT {
        sizes.push(k * k * bs + 1);
    }
    sizes
}

fn salts(bs: u64) -> Vec<Option<&'static str>> {
    let mut s = vec![None, Some(SALT32)];
    if bs == 1024 || bs == 4096 {
        // A salt shorter than the hash block, padded by the kernel.
        s.push(Some("0a0b0c"));
    }
    s
}

fn param_args(alg: &str, bs: u64, salt: Option<&str>) -> Vec<String> {
    let mut args = vec![format!("--hash-alg={alg}"), format!("--block-size={bs}")];
    if let Some(s) = salt {
        args.push(format!("--salt={s}"));
    }
    args
}

/// `sealroot digest` prints exactly what `fsverity digest` prints, for all
/// algorithms, block sizes, salts and tree shapes, several files at once.
#[test]
fn digest_matches_fsverity_utils() {
    let mut corpus = Corpus::new();
    let mut checked = 0;
    for (alg, ds) in ALGS {
        for bs in BLOCK_SIZES {
            let sizes = shape_sizes(bs, ds);
            for salt in salts(bs) {
                // Salts change every hash the same way at every size: the
                // two-level files of large block sizes (up to 128 MiB) are
                // hashed unsalted only, to keep the test quick.
                let files: Vec<PathBuf> = sizes
                    .iter()
                    .filter(|&&s| salt.is_none() || s <= THREE_LEVEL_LIMIT)
                    .map(|&s| corpus.file(s))
                    .collect();
                let args = param_args(alg, bs, salt);
                let mut ours = sealroot();
                ours.arg("digest").args(&args).args(&files);
                let mut theirs = fsverity().command();
                theirs.arg("digest").args(&args).args(&files);
                let (ours, theirs) = (ok(ours), ok(theirs));
                assert_eq!(ours, theirs, "{alg} block {bs} salt {salt:?}");
                assert_eq!(ours.lines().count(), files.len());
                checked += files.len();
            }
        }
    }
    assert!(checked >= 200, "only {checked} digests compared");
}

/// `--out-merkle-tree` and `--out-descriptor` write the same bytes as
/// fsverity-utils, for the largest tree of each algorithm and block size and
/// for a two-block file.
#[test]
fn merkle_tree_and_descriptor_files_match_fsverity_utils() {
    let mut corpus = Corpus::new();
    let out = tempfile::tempdir().unwrap();
    let (t1, d1, t2, d2) = (
        out.path().join("ours.tree"),
        out.path().join("ours.desc"),
        out.path().join("theirs.tree"),
        out.path().join("theirs.desc"),
    );
    for (alg, ds) in ALGS {
        for bs in BLOCK_SIZES {
            let shapes = shape_sizes(bs, ds);
            let largest = *shapes
                .iter()
                .filter(|&&s| s <= THREE_LEVEL_LIMIT)
                .max()
                .unwrap();
            for (size, salt) in [(largest, Some(SALT32)), (bs + 1, None)] {
                let file = corpus.file(size);
                let args = param_args(alg, bs, salt);
                let mut ours = sealroot();
                ours.arg("digest")
                    .args(&args)
                    .arg(format!("--out-merkle-tree={}", t1.display()))
                    .arg(format!("--out-descriptor={}", d1.display()))
                    .arg(&file);
                let mut theirs = fsverity().command();
                theirs
                    .arg("digest")
                    .args(&args)
                    .arg(format!("--out-merkle-tree={}", t2.display()))
                    .arg(format!("--out-descriptor={}", d2.display()))
                    .arg(&file);
                assert_eq!(ok(ours), ok(theirs));
                let what = format!("{alg} block {bs} size {size}");
                let (tree, their_tree) = (std::fs::read(&t1).unwrap(), std::fs::read(&t2).unwrap());
                assert!(tree == their_tree, "Merkle tree differs: {what}");
                assert_eq!(tree.len() as u64 % bs, 0, "{what}");
                assert_eq!(
                    std::fs::read(&d1).unwrap(),
                    std::fs::read(&d2).unwrap(),
                    "descriptor differs: {what}"
                );
            }
        }
    }
}

/// `--compact`, `--for-builtin-sig` and both together print what
/// fsverity-utils prints.
#[test]
fn output_formats_match_fsverity_utils() {
    let mut corpus = Corpus::new();
    let files: Vec<PathBuf> = [0, 5, 4097, 300_000].map(|s| corpus.file(s)).to_vec();
    for (alg, _) in ALGS {
        for flags in [
            &["--compact"][..],
            &["--for-builtin-sig"],
            &["--for-builtin-sig", "--compact"],
        ] {
            let mut ours = sealroot();
            ours.arg("digest")
                .arg(format!("--hash-alg={alg}"))
                .args(flags)
                .args(&files);
            let mut theirs = fsverity().command();
            theirs
                .arg("digest")
                .arg(format!("--hash-alg={alg}"))
                .args(flags)
                .args(&files);
            assert_eq!(ok(ours), ok(theirs), "{alg} {flags:?}");
        }
    }
}

/// `--json` carries the same digests as the text output, plus parameters.
#[test]
fn json_output_agrees_with_text() {
    let mut corpus = Corpus::new();
    let files: Vec<PathBuf> = [1, 70_000].map(|s| corpus.file(s)).to_vec();
    let mut text = sealroot();
    text.args(["digest", "--salt=ab", "--hash-alg=sha512"])
        .args(&files);
    let text = ok(text);
    let mut json = sealroot();
    json.args(["digest", "--json", "--salt=ab", "--hash-alg=sha512"])
        .args(&files);
    let json: serde_json::Value = serde_json::from_str(&ok(json)).unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), files.len());
    for ((item, line), file) in items.iter().zip(text.lines()).zip(&files) {
        assert_eq!(
            format!(
                "{} {}",
                item["digest"].as_str().unwrap(),
                item["file"].as_str().unwrap()
            ),
            line
        );
        assert_eq!(item["file"].as_str().unwrap(), file.to_str().unwrap());
        assert_eq!(item["hash_algorithm"], "sha512");
        assert_eq!(item["block_size"], 4096);
        assert_eq!(item["salt"], "ab");
        assert_eq!(item["data_size"], std::fs::metadata(file).unwrap().len());
        let formatted = item["formatted_digest"].as_str().unwrap();
        let hex = item["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha512:")
            .unwrap();
        assert_eq!(formatted, format!("465356657269747902004000{hex}"));
    }
}

/// Same exit codes as fsverity for a missing file (1, after printing the
/// files before it) and for bad arguments (2).
#[test]
fn exit_codes_match_fsverity_utils() {
    let mut corpus = Corpus::new();
    let good = corpus.file(10);
    let missing = corpus.dir.path().join("missing");
    let cases: [Vec<std::ffi::OsString>; 4] = [
        vec!["digest".into(), good.clone().into(), missing.clone().into()],
        vec!["digest".into(), "--salt=xyz".into(), good.clone().into()],
        vec![
            "digest".into(),
            "--hash-alg=md5".into(),
            good.clone().into(),
        ],
        vec!["digest".into()],
    ];
    for args in cases {
        let mut ours = sealroot();
        ours.args(&args);
        let mut theirs = fsverity().command();
        theirs.args(&args);
        let (ours, theirs) = (run(ours), run(theirs));
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    }
    let mut cmd = sealroot();
    cmd.arg("digest").arg(&missing);
    let err = String::from_utf8(run(cmd).stderr).unwrap();
    assert!(
        err.contains(&format!("'{}'", missing.display())) && err.contains("ENOENT"),
        "{err}"
    );
}

/// The kernel calls on a plain file of the host's temp filesystem. Where the
/// host has no fs-verity (the usual case here) every command fails with exit
/// 1 naming the errno, the path and the fix; where it has, enabling works
/// and the kernel's digest equals ours.
#[test]
fn kernel_commands_on_host_filesystem() {
    let mut corpus = Corpus::new();
    let file = corpus.file(100_000);
    let mut enable = sealroot();
    enable.arg("enable").arg(&file);
    let out = run(enable);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = format!("'{}'", file.display());
    if out.status.success() {
        let mut measure = sealroot();
        measure.arg("measure").arg(&file);
        let mut digest = sealroot();
        digest.arg("digest").arg(&file);
        assert_eq!(ok(measure), ok(digest));
        let mut show = sealroot();
        show.arg("show-signature").arg(&file);
        assert_eq!(run(show).status.code(), Some(3));
        let mut again = sealroot();
        again.arg("enable").arg(&file);
        let again = run(again);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stderr).contains("EEXIST"));
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("FS_IOC_ENABLE_VERITY failed on"),
        "{stderr}"
    );
    assert!(stderr.contains(&path), "{stderr}");
    if stderr.contains("EOPNOTSUPP") {
        assert!(stderr.contains("mkfs.ext4 -O verity"), "{stderr}");
        assert!(stderr.contains("tune2fs -O verity"), "{stderr}");
    } else {
        assert!(stderr.contains("ENOTTY"), "{stderr}");
    }
    for sub in [
        &["measure"][..],
        &["dump-metadata", "descriptor"],
        &["dump-metadata", "merkle_tree"],
        &["show-signature"],
    ] {
        let mut cmd = sealroot();
        cmd.args(sub).arg(&file);
        let out = run(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{sub:?}: {stderr}");
        assert!(stderr.contains(&path), "{sub:?}: {stderr}");
        assert!(
            ["EOPNOTSUPP", "ENOTTY", "ENODATA"]
                .iter()
                .any(|e| stderr.contains(&format!(": {e}: "))),
            "{sub:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// Usage errors exit 2 without touching anything.
#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let tree = dir.path().join("tree");
    for args in [
        vec![
            "dump-metadata".into(),
            "descriptor".into(),
            "--offset=0".into(),
            f.display().to_string(),
        ],
        vec![
            "dump-metadata".into(),
            "tree".into(),
            f.display().to_string(),
        ],
        vec![
            "digest".into(),
            format!("--out-merkle-tree={}", tree.display()),
            f.display().to_string(),
            f.display().to_string(),
        ],
        vec![
            "digest".into(),
            "--block-size=3000".into(),
            f.display().to_string(),
        ],
        vec!["enable".into()],
    ] {
        let mut cmd = sealroot();
        cmd.args(&args);
        assert_eq!(run(cmd).status.code(), Some(2), "{args:?}");
    }
    assert!(!Path::new(&tree).exists());
}
