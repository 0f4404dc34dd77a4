//! `sealroot sign` and `sealroot verify`: fs-verity builtin signatures,
//! compatible with `fsverity sign`.

use sealroot::atomic::{self, Mode};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use sealroot::crypto::key::KeySigner;
use sealroot::crypto::{Cert, DigestAlgorithm};
use sealroot::pkcs7::{self, ProfileError, SignOptions, VerifyError};
use sealroot::verity::{FsVerityDigest, digest};

// Exit statuses, the same for every subcommand (README "Exit status").
/// The signature was refused (verify), or the kernel refused (keyring).
pub const EXIT_REFUSED: u8 = 1;
/// The command line cannot run (as clap's own errors).
pub const EXIT_USAGE: u8 = 2;
/// An input could not be read or parsed, or the environment lacks
/// something (no .fs-verity keyring).
pub const EXIT_INPUT: u8 = 3;

/// Prints an error the way `main` does and returns `code`.
pub fn fail(code: u8, err: &anyhow::Error) -> ExitCode {
    eprintln!("sealroot: error: {err:#}");
    ExitCode::from(code)
}

use crate::verity::VerityParamsArgs;

const SIGN_AFTER_HELP: &str = "\
How fs-verity builtin signatures work:
  The kernel (CONFIG_FS_VERITY_BUILTIN_SIGNATURES) checks a PKCS#7 signature
  over the file's fs-verity digest against the certificates in the
  `.fs-verity` keyring when fs-verity is enabled on the file, and again each
  time the file's verity metadata is loaded (its first open after boot or
  after the inode was evicted). `sealroot sign` makes that signature: DER PKCS#7, detached, over
  \"FSVerity\" | algorithm | size | digest, no signed attributes, the signer
  named by issuer and serial number - byte for byte what `fsverity sign`
  writes for RSA keys. ECDSA signatures use RFC 6979 nonces, so they are
  reproducible too.

  Keys: RSA 2048/3072/4096 or ECDSA P-256/P-384, as PEM or DER in PKCS#8,
  PKCS#1 or SEC1. The kernel cannot use Ed25519, RSA-PSS or other curves.

  With --embed-cert the signer certificate travels in the signature, so the
  keyring only needs the CA that issued it (add intermediates with
  --extra-cert).

Examples:
  sealroot keygen --out-dir=keys
  sealroot sign rootfs.erofs rootfs.erofs.sig --key=keys/signer.key.pem --cert=keys/signer.crt.pem
  sealroot sign --embed-cert --hash-alg=sha512 FILE FILE.sig --key=K --cert=C
  sealroot sign --digest=sha256:$(sealroot digest --compact FILE) FILE.sig --key=K --cert=C
  fsverity enable FILE --signature=FILE.sig      # kernel checks it against .fs-verity

Output: `Signed file 'FILE' (sha256:<digest>)` as `fsverity sign` prints it, or
JSON with --json. Exit status: 0 signed, 2 usage error (wrong number of files), 3 unreadable
or unusable key/cert/file.";

/// Sign a file's fs-verity digest (a builtin signature), like `fsverity sign`.
#[derive(Args, Debug)]
#[command(after_long_help = SIGN_AFTER_HELP)]
pub struct SignArgs {
    /// FILE OUT_SIGFILE, or only OUT_SIGFILE with --digest.
    #[arg(value_name = "FILE OUT_SIGFILE", num_args = 1..=2, required = true)]
    paths: Vec<PathBuf>,

    /// Private key: PEM or DER; PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,

    /// The signer's X.509 certificate (PEM or DER).
    #[arg(long, value_name = "CERTFILE")]
    cert: PathBuf,

    /// Sign this fs-verity digest (`sha256:<hex>`) instead of a file's.
    #[arg(long, value_name = "ALG:HEX")]
    digest: Option<FsVerityDigest>,

    #[command(flatten)]
    params: VerityParamsArgs,

    /// Embed the signer certificate in the signature, so that only its CA
    /// needs to be in the keyring.
    #[arg(long)]
    embed_cert: bool,

    /// Also embed these certificates (intermediate CAs); files or
    /// directories.
    #[arg(long, value_name = "CERT")]
    extra_cert: Vec<PathBuf>,

    /// Print a JSON object instead of the `fsverity sign` line.
    #[arg(long)]
    json: bool,
}

pub fn run_sign(args: SignArgs) -> Result<ExitCode> {
    match (&args.digest, args.paths.as_slice()) {
        (Some(_), [_]) | (None, [_, _]) => {}
        (Some(_), _) => {
            return Ok(fail(
                EXIT_USAGE,
                &anyhow::anyhow!("with --digest, give only OUT_SIGFILE"),
            ));
        }
        (None, _) => {
            return Ok(fail(
                EXIT_USAGE,
                &anyhow::anyhow!("give FILE and OUT_SIGFILE (or --digest=ALG:HEX and OUT_SIGFILE)"),
            ));
        }
    }
    match sign(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(fail(EXIT_INPUT, &e)),
    }
}

fn sign(args: &SignArgs) -> Result<()> {
    let (file, out) = match (&args.digest, args.paths.as_slice()) {
        (Some(_), [out]) => (None, out),
        (None, [file, out]) => (Some(file), out),
        _ => unreachable!("run_sign checked the paths"),
    };
    let signer = KeySigner::load(&args.key)?;
    let cert = single_cert(&args.cert)?;
    signer.key().check_matches(signer.origin(), &cert)?;
    let extra_certs = Cert::load_all(&args.extra_cert)?;
    let digest = match (&args.digest, file) {
        (Some(d), _) => *d,
        (None, Some(file)) => {
            digest::digest_file(&args.params.params(), file).with_context(|| {
                format!(
                    "cannot compute the fs-verity digest of '{}'",
                    file.display()
                )
            })?
        }
        (None, None) => unreachable!("checked above"),
    };
    let options = SignOptions {
        embed_signer_cert: args.embed_cert,
        extra_certs,
    };
    let signature = pkcs7::sign_fsverity(&digest, &signer, &cert, &options)?;
    atomic::write(out, Mode::Umask, &signature)?;
    if args.json {
        let v = serde_json::json!({
            "file": file,
            "digest": digest.to_string(),
            "signature_file": out,
            "signature_bytes": signature.len(),
            "signer": cert.info(),
            "signature_algorithm": signer.key().signature_algorithm(
                DigestAlgorithm::for_fsverity(digest.algorithm())).to_string(),
            "embedded_certificates": usize::from(args.embed_cert) + options.extra_certs.len(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(file) = file {
        outln!("Signed file '{}' ({digest})", file.display());
    } else {
        outln!("Signed digest ({digest})");
    }
    Ok(())
}

/// Exactly one certificate from a file.
fn single_cert(path: &Path) -> Result<Cert> {
    let mut certs = Cert::load(path)?;
    if certs.len() != 1 {
        bail!(
            "{}: holds {} certificates; --cert wants the signer's only (intermediates go in \
             --extra-cert)",
            path.display(),
            certs.len()
        );
    }
    Ok(certs.remove(0))
}

const VERIFY_AFTER_HELP: &str = "\
Checks, in userspace, what the kernel checks when it opens a file with a
builtin signature: computes the file's fs-verity digest, then verifies the
PKCS#7 signature against the trusted certificates. The signer must be one of
them, or a certificate embedded in the signature that chains to one of them
(each issuer must be a CA: basicConstraints cA=TRUE). Validity dates are not
checked, like in the kernel.

Examples:
  sealroot verify rootfs.erofs rootfs.erofs.sig --cert=keys/signer.crt.pem
  sealroot verify FILE FILE.sig --certs-dir=/etc/sealroot/certs --json
  sealroot verify --digest=sha256:<hex> FILE.sig --cert=ca.crt.pem

Exit status: 0 verified, 1 refused (the reason names the evidence: unknown
signer with issuer and serial, signature or digest mismatch, profile
violation...), 2 usage error (wrong number of files), 3 unreadable or malformed inputs (a
signature file that is not DER PKCS#7).";

/// Verify a file's fs-verity builtin signature against trusted certificates.
#[derive(Args, Debug)]
#[command(after_long_help = VERIFY_AFTER_HELP)]
pub struct VerifyArgs {
    /// FILE SIGFILE, or only SIGFILE with --digest.
    #[arg(value_name = "FILE SIGFILE", num_args = 1..=2, required = true)]
    paths: Vec<PathBuf>,

    /// A trusted certificate file (PEM or DER, one or many); repeatable.
    #[arg(long, value_name = "CERT", required_unless_present = "certs_dir")]
    cert: Vec<PathBuf>,

    /// A directory of trusted certificates (*.pem, *.crt, *.cer, *.der).
    #[arg(long, value_name = "DIR")]
    certs_dir: Vec<PathBuf>,

    /// Verify against this fs-verity digest (`sha256:<hex>`) instead of a file's.
    #[arg(long, value_name = "ALG:HEX")]
    digest: Option<FsVerityDigest>,

    #[command(flatten)]
    params: VerityParamsArgs,

    /// Print a JSON object (also on refusal).
    #[arg(long)]
    json: bool,
}

pub fn run_verify(args: VerifyArgs) -> Result<ExitCode> {
    let (file, sig_path) = match (&args.digest, args.paths.as_slice()) {
        (Some(_), [sig]) => (None, sig),
        (None, [file, sig]) => (Some(file), sig),
        (Some(_), _) => {
            return Ok(fail(
                EXIT_USAGE,
                &anyhow::anyhow!("with --digest, give only SIGFILE"),
            ));
        }
        (None, _) => return Ok(fail(EXIT_USAGE, &anyhow::anyhow!("give FILE and SIGFILE"))),
    };
    let inputs = (|| -> Result<_> {
        let mut sources = args.cert.clone();
        sources.extend(args.certs_dir.iter().cloned());
        let trusted = Cert::load_all(&sources)?;
        let signature = std::fs::read(sig_path)
            .with_context(|| format!("cannot read signature '{}'", sig_path.display()))?;
        let digest = match (&args.digest, file) {
            (Some(d), _) => *d,
            (None, Some(f)) => {
                digest::digest_file(&args.params.params(), f).with_context(|| {
                    format!("cannot compute the fs-verity digest of '{}'", f.display())
                })?
            }
            (None, None) => unreachable!("checked above"),
        };
        Ok((trusted, signature, digest))
    })();
    let (trusted, signature, digest) = match inputs {
        Ok(i) => i,
        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
    };
    let subject = match file {
        Some(f) => format!("file '{}'", f.display()),
        None => "digest".to_string(),
    };
    match pkcs7::verify_fsverity(&signature, &digest, &trusted) {
        Ok(v) => {
            if args.json {
                let mut json = serde_json::to_value(&v)?;
                json["verified"] = true.into();
                json["file"] = serde_json::to_value(file)?;
                json["digest"] = digest.to_string().into();
                json["signature_file"] = serde_json::to_value(sig_path)?;
                outln!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                out!("Verified {subject} ({digest}): signed by {}", v.signer);
                if v.trusted.fingerprint != v.signer.fingerprint {
                    out!(", trusted through {}", v.trusted);
                }
                outln!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            let hint = algorithm_hint(&signature, &digest, &err);
            if args.json {
                let json = serde_json::json!({
                    "verified": false,
                    "file": file,
                    "digest": digest.to_string(),
                    "signature_file": sig_path,
                    "reason": reason_code(&err),
                    "error": err.to_string(),
                    "hint": hint,
                });
                outln!("{}", serde_json::to_string_pretty(&json)?);
            }
            let mut message = format!(
                "signature '{}' for {subject} refused: {err}",
                sig_path.display()
            );
            if let Some(hint) = hint {
                message.push_str(&format!("\n  hint: {hint}"));
            }
            let e = anyhow::anyhow!(message);
            // A signature file that is not DER PKCS#7 at all is malformed
            // input; one that parses but breaks the profile or does not
            // verify is refused.
            let code = match err {
                VerifyError::Profile(ProfileError::Malformed(_) | ProfileError::NotDer) => {
                    EXIT_INPUT
                }
                _ => EXIT_REFUSED,
            };
            Ok(fail(code, &e))
        }
    }
}

/// A stable, script-friendly name for the refusal.
fn reason_code(err: &VerifyError) -> &'static str {
    match err {
        VerifyError::Profile(_) => "profile",
        VerifyError::UnknownSigner { .. } => "unknown-signer",
        VerifyError::UntrustedRoot { .. } => "untrusted-root",
        VerifyError::SignatureMismatch { .. } => "signature-mismatch",
        VerifyError::DigestMismatch { .. } => "digest-mismatch",
        VerifyError::Chain(_) => "chain",
        VerifyError::SignerKeyUsage { .. } => "key-usage",
        VerifyError::SigningTime { .. } => "signing-time",
    }
}

/// `fsverity sign` uses the fs-verity hash as the PKCS#7 digest; when they
/// differ, the wrong --hash-alg is the likely cause of a mismatch.
fn algorithm_hint(signature: &[u8], digest: &FsVerityDigest, err: &VerifyError) -> Option<String> {
    if !matches!(
        err,
        VerifyError::DigestMismatch { .. } | VerifyError::SignatureMismatch { .. }
    ) {
        return None;
    }
    let msg = pkcs7::profile::parse(signature).ok()?;
    let ours = DigestAlgorithm::for_fsverity(digest.algorithm());
    (msg.digest_algorithm != ours).then(|| {
        format!(
            "the signature uses {} but the fs-verity digest is {}; was the file signed with \
             --hash-alg={}?",
            msg.digest_algorithm,
            digest.algorithm(),
            msg.digest_algorithm
        )
    })
}

/// The signer options of the sealing commands (`ostree seal`; the same
/// flags as `oci seal`): a key file or a signing command, the signer's
/// certificate, and whether to embed it.
#[derive(Args, Debug)]
pub struct SignerArgs {
    /// Private key (PEM/DER; PKCS#8, PKCS#1, SEC1); or use --sign-command
    #[arg(
        long,
        value_name = "KEYFILE",
        required_unless_present = "sign_command",
        conflicts_with = "sign_command"
    )]
    pub key: Option<PathBuf>,
    /// Signer certificate (its key must sign); the initramfs trusts it or its CA
    #[arg(long, value_name = "CERTFILE")]
    pub cert: PathBuf,
    /// Sign by running this shell command (protocol: `sealroot oci seal --help`)
    #[arg(long, value_name = "COMMAND")]
    pub sign_command: Option<String>,
    /// Embed the signer certificate in each signature (then only its CA needs trusting)
    #[arg(long)]
    pub embed_cert: bool,
}

/// A loaded signer: its certificate, the signer, the PKCS#7 options.
pub struct LoadedSigner {
    pub cert: Cert,
    pub signer: Box<dyn sealroot::crypto::Signer + Sync>,
    pub options: SignOptions,
}

impl SignerArgs {
    /// Loads the certificate (exactly one) and the key (checked to match
    /// it) or sets up the signing command.
    pub fn load(&self) -> Result<LoadedSigner> {
        use sealroot::crypto::command::CommandSigner;
        let mut certs = Cert::load(&self.cert)?;
        if certs.len() != 1 {
            bail!(
                "{}: holds {} certificates; --cert wants the signer's only",
                self.cert.display(),
                certs.len()
            );
        }
        let cert = certs.remove(0);
        let signer: Box<dyn sealroot::crypto::Signer + Sync> = match (&self.key, &self.sign_command)
        {
            (Some(k), _) => {
                let s = KeySigner::load(k)?;
                s.key().check_matches(s.origin(), &cert)?;
                Box::new(s)
            }
            (None, Some(cmd)) => Box::new(CommandSigner::new(cmd.clone(), cert.key_algorithm())),
            (None, None) => bail!("give --key or --sign-command"),
        };
        Ok(LoadedSigner {
            cert,
            signer,
            options: SignOptions {
                embed_signer_cert: self.embed_cert,
                extra_certs: Vec::new(),
            },
        })
    }
}
