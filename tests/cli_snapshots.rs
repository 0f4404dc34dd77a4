//! What users read: every `--help` of every subcommand and a set of
//! representative errors, run through the real binaries and compared with
//! the snapshots in `tests/snapshots/` (the `insta` crate; docs/HACKING.md,
//! "Snapshot tests", says how to review and update them). Also the README's
//! exit-status table, one command per row, and a closed stdout.
//!
//! The subcommands are found by walking the help output itself ("Commands:"
//! of each level), so a new subcommand gets its snapshot without touching
//! this file.

mod oci_support;
mod repo_support;

use std::process::{Command, Output, Stdio};

use repo_support::{Keys, image_ref, sample_image};

const SEALROOT: &str = env!("CARGO_BIN_EXE_sealroot");
const PREPARE: &str = env!("CARGO_BIN_EXE_sealroot-prepare");

/// Runs a binary with a fixed terminal width and no colours, so the help
/// wraps the same everywhere.
fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary")
}

/// The subcommand names listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            // Entries are indented by two spaces; continuation lines of a
            // wrapped description by more.
            match line.strip_prefix("  ") {
                Some(rest) if !rest.starts_with(' ') => {
                    let name = rest.split_whitespace().next().unwrap_or_default();
                    if name != "help" {
                        names.push(name.to_owned());
                    }
                }
                Some(_) => {}
                None => in_commands = false,
            }
        }
    }
    names
}

/// `sealroot [PATH...] --help`, then the same for every subcommand below.
fn walk_help(path: &mut Vec<String>, seen: &mut Vec<String>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = run(SEALROOT, &args);
    let name = if path.is_empty() {
        "help_sealroot".to_owned()
    } else {
        format!("help_sealroot_{}", path.join("_"))
    };
    assert_eq!(out.status.code(), Some(0), "sealroot {args:?}");
    assert!(out.stderr.is_empty(), "sealroot {args:?} wrote to stderr");
    let help = String::from_utf8(out.stdout).expect("help is UTF-8");
    insta::assert_snapshot!(name.clone(), help);
    seen.push(name);
    for sub in subcommands(&help) {
        path.push(sub);
        walk_help(path, seen);
        path.pop();
    }
}

#[test]
fn every_help_text() {
    let mut seen = Vec::new();
    walk_help(&mut Vec::new(), &mut seen);
    // The walk found the tree (and not just the top level).
    for expected in [
        "help_sealroot_deploy",
        "help_sealroot_oci_seal",
        "help_sealroot_repo_fsck",
        "help_sealroot_keyring_add",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
}

#[test]
fn deploy_help_explains_signatures_and_exit_status() {
    let out = run(SEALROOT, &["deploy", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Signatures (--signatures):",
        "attach-at-boot  leave fs-verity off",
        "Exit status: 0 deployed",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
    assert!(!help.contains("see above"), "{help}");
}

#[test]
fn prepare_help_text() {
    let out = run(PREPARE, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(
        "help_sealroot_prepare",
        String::from_utf8(out.stdout).unwrap()
    );
}

/// A scratch directory with a sealed sample image, a signer and the files
/// the error cases need.
struct Scratch {
    tmp: tempfile::TempDir,
    keys: Keys,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let keys = Keys::new(&tmp.path().join("keys"), "p256", "CN=snapshot signer");
        sample_image(&tmp.path().join("layout"));
        std::fs::write(tmp.path().join("file"), b"some content\n").unwrap();
        std::fs::write(tmp.path().join("garbage.sig"), b"not a PKCS#7 message").unwrap();
        Scratch { tmp, keys }
    }

    fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).to_str().unwrap().to_owned()
    }

    fn image(&self) -> String {
        image_ref(&self.tmp.path().join("layout"))
    }

    /// Runs `sealroot ARGS` (`{T}` in an argument stands for the scratch
    /// directory) and renders exit status and stderr with the scratch
    /// directory as `[TMP]`.
    fn error(&self, args: &[&str]) -> (i32, String) {
        let root = self.tmp.path().to_str().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.replace("{T}", root)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(SEALROOT, &args);
        let code = out.status.code().expect("exited, not killed");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(root, "[TMP]");
        (code, stderr)
    }
}

/// Each case: a snapshot name, the command line, and the exit status the
/// README's table gives it.
#[test]
fn representative_errors() {
    let s = Scratch::new();
    let image = s.image();
    let key = s.keys.key();
    let cert = s.keys.cert();
    let failing_signer = "echo 'HSM: token not present' >&2; exit 7";
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            "missing_key_file",
            vec![
                "sign",
                "{T}/file",
                "{T}/out.sig",
                "--key",
                "{T}/nokey.pem",
                "--cert",
                &cert,
            ],
            3,
        ),
        (
            "missing_cert_file",
            vec![
                "verify",
                "{T}/file",
                "{T}/garbage.sig",
                "--cert",
                "{T}/nocert.pem",
            ],
            3,
        ),
        (
            "inspect_missing_layout",
            vec!["oci", "inspect", "oci:{T}/nolayout"],
            3,
        ),
        (
            "verify_missing_layout",
            vec!["oci", "verify", "oci:{T}/nolayout"],
            3,
        ),
        (
            "seal_missing_layout",
            vec![
                "oci",
                "seal",
                "oci:{T}/nolayout",
                "--key",
                &key,
                "--cert",
                &cert,
            ],
            3,
        ),
        (
            "unknown_tag",
            vec!["oci", "inspect", "oci:{T}/layout:nosuchtag"],
            3,
        ),
        (
            "bad_digest",
            vec![
                "verify",
                "--digest",
                "sha256:1234",
                "{T}/garbage.sig",
                "--cert",
                &cert,
            ],
            2,
        ),
        (
            "garbage_signature",
            vec!["verify", "{T}/file", "{T}/garbage.sig", "--cert", &cert],
            3,
        ),
        (
            "failed_sign_command",
            vec![
                "oci",
                "seal",
                &image,
                "--cert",
                &cert,
                "--sign-command",
                failing_signer,
            ],
            3,
        ),
        (
            "deploy_without_cert",
            vec!["deploy", &image, "--sysroot", "{T}"],
            2,
        ),
        (
            "deploy_missing_sysroot",
            vec![
                "deploy",
                &image,
                "--sysroot",
                "{T}/nosysroot",
                "--cert",
                &cert,
            ],
            3,
        ),
        (
            "unknown_platform",
            vec!["oci", "inspect", "--platform", "linux/s390x", &image],
            3,
        ),
        (
            "sign_usage",
            vec!["sign", "{T}/file", "--key", &key, "--cert", &cert],
            2,
        ),
        (
            "verify_usage",
            vec!["verify", "{T}/file", "--cert", &cert],
            2,
        ),
        (
            "repo_list_missing_repository",
            vec!["repo", "list", "--repo", "{T}/norepo"],
            3,
        ),
        ("unknown_subcommand", vec!["frobnicate"], 2),
    ];
    let mut sign_command_stderr = String::new();
    for (name, args, code) in cases {
        let (got, stderr) = s.error(&args);
        if name == "failed_sign_command" {
            sign_command_stderr.clone_from(&stderr);
        }
        assert_eq!(got, code, "{name}: sealroot {args:?}:\n{stderr}");
        insta::assert_snapshot!(
            format!("error_{name}"),
            format!("exit status {got}\n{stderr}")
        );
        // Each cause once: no line of the message repeats a ": "-separated
        // part of itself (what `{:#}` printed when a cause was both in the
        // message and the source).
        for line in stderr.lines() {
            let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 12).collect();
            for (i, p) in parts.iter().enumerate() {
                assert!(
                    !parts[i + 1..].contains(p),
                    "{name}: {p:?} printed twice in {line:?}"
                );
            }
        }
    }
    // The signing command's failure (its status and stderr) is told once
    // (the command line itself contains the stderr text, hence "exited").
    let stderr = &sign_command_stderr;
    assert_eq!(stderr.matches("exited with").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("present").count(), 2, "{stderr}");
}

/// The README's exit-status table: one real command per row, and every row
/// of the table has one.
#[test]
fn exit_status_table() {
    let s = Scratch::new();
    let other = Keys::new(&s.tmp.path().join("other"), "p256", "CN=other signer");
    let sig = s.path("file.sig");
    let file = s.path("file");
    let (key, cert) = (s.keys.key(), s.keys.cert());
    let signed = run(
        SEALROOT,
        &["sign", &file, &sig, "--key", &key, "--cert", &cert],
    );
    assert!(signed.status.success(), "{signed:?}");
    let other_cert = other.cert();
    let nolayout = format!("oci:{}", s.path("nolayout"));
    let rows: Vec<(i32, Vec<&str>)> = vec![
        (0, vec!["verify", &file, &sig, "--cert", &cert]),
        // Signed by a key the given certificate does not belong to.
        (1, vec!["verify", &file, &sig, "--cert", &other_cert]),
        (2, vec!["sign", &file, "--key", &key, "--cert", &cert]),
        (3, vec!["oci", "verify", &nolayout]),
    ];
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table: Vec<i32> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| status | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with("| "))
        .map(|l| l[2..].split(' ').next().unwrap().parse().expect("a status"))
        .collect();
    assert!(!table.is_empty(), "README.md has the exit-status table");
    let tested: Vec<i32> = rows.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        table, tested,
        "every row of README's table has a command here"
    );
    for (code, args) in rows {
        let out = run(SEALROOT, &args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "sealroot {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `sealroot ... --json | head -c1`: the reader is gone before the first
/// write; the process ends by SIGPIPE like other Unix tools, with nothing on
/// stderr (no panic, no error message).
#[test]
fn closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new();
    let image = s.image();
    for args in [
        vec!["oci", "inspect", "--json", image.as_str()],
        vec!["digest", "--compact", s.path("file").leak()],
    ] {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let out = Command::new(SEALROOT)
            .args(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "sealroot {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "sealroot {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
