//! `sealroot ipe`: write, sign and inspect the IPE policy of a sealed
//! system (docs/ipe.md).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sealroot::crypto::{Cert, Signer};
use sealroot::ipe::{Op, SealedPolicy, SignedPolicy, Trust, Version};
use serde_json::json;

use crate::repo::TrustArgs;
use crate::sign::{EXIT_INPUT, EXIT_REFUSED, fail};
use sealroot::atomic::{self, Mode};

const LONG_HELP: &str = "\
IPE (Integrity Policy Enforcement, Linux >= 6.12) decides which files may be executed \
(execve, mmap/mprotect PROT_EXEC), loaded as kernel modules or firmware, or kexec'd. For \
a sealed system sealroot writes a policy that allows only files from the initramfs \
(boot_verified=TRUE) and files with fs-verity and a builtin signature the kernel verified \
against the sealed .fs-verity keyring (fsverity_signature=TRUE) — on 6.12 IPE judges the \
composefs object behind an overlay file, so seal with `oci seal --object-signatures`.

The policy must be signed (PKCS#7, the text attached) by a key whose certificate is in the \
kernel's secondary trusted keyring or its platform keyring (UEFI db, or MOK with shim); \
sealroot-prepare loads it from /etc/sealroot/ipe/policy.p7s of the initramfs and activates \
it once the sealed root is mounted.

  sealroot ipe policy --policy-version 1.0.0 > policy.ipe
  sealroot ipe sign policy.ipe --key db.key --cert db.crt --out policy.p7s
  sealroot ipe show policy.p7s --cert db.crt
  install -D -m 0644 policy.p7s /etc/sealroot/ipe/policy.p7s   # then rebuild the initramfs";

const POLICY_HELP: &str = "\
Prints the policy for a sealed system (docs/ipe.md explains each rule):

  DEFAULT action=DENY                      operations a later kernel adds
  op=EXECUTE: initramfs or signed, else DENY (always)
  op=KMODULE, FIRMWARE, POLICY, X509_CERT: --kernel-modules etc. (default: signed)
  op=KEXEC_IMAGE, KEXEC_INITRAMFS: --kexec (default: deny)
  (POLICY and X509_CERT: --policy-files, --x509-certs)

signed = boot_verified=TRUE or fsverity_signature=TRUE, anything else (including data \
handed over in a buffer, e.g. init_module(2) of a module decompressed in userspace) \
DENY; any = DEFAULT ALLOW (the kernel's own checks, e.g. module signatures, still apply); \
deny = DEFAULT DENY.

Roll a policy forward by raising --policy-version: the kernel refuses to activate a policy \
older than the active one and to update one to a version that is not newer.";

#[derive(Args)]
#[command(long_about = LONG_HELP)]
pub struct IpeArgs {
    #[command(subcommand)]
    command: IpeCommand,
}

#[derive(Subcommand)]
enum IpeCommand {
    /// Write the IPE policy for a sealed system
    #[command(long_about = POLICY_HELP)]
    Policy(PolicyArgs),
    /// Sign a policy for the kernel (PKCS#7 with the text attached)
    #[command(
        long_about = "Checks the policy with the kernel's grammar (Linux 6.12 \
        security/ipe/policy_parser.c), then signs it as IPE takes it: DER PKCS#7 SignedData, \
        SHA-256, the policy attached, no signed attributes, the signer certificate embedded — \
        what `openssl smime -sign -noattr -nodetach -nosmimecap -binary -outform der` \
        writes (byte-identical for RSA keys).\n\n\
        Example: sealroot ipe sign policy.ipe --key db.key --cert db.crt --out policy.p7s\n\n\
        Exit status: 0 signed, 1 the policy is not valid, 3 unusable key, certificate or \
        signing command."
    )]
    Sign(SignPolicyArgs),
    /// Show a signed policy: name, version, signer, rules
    #[command(
        long_about = "Parses a signed policy as sealroot-prepare does and prints \
        its name, version, signer and rules. With --cert/--certs-dir the signature is also \
        verified in userspace against those certificates (give the certificate you enrolled \
        in db or MOK): the kernel decides with its own keyrings at boot.\n\n\
        Exit status: 0 valid (and verified, with certificates), 1 not a valid signed \
        policy or not signed by them, 3 unreadable input."
    )]
    Show {
        /// The signed policy (DER PKCS#7)
        file: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct PolicyArgs {
    /// policy_name: the key of the policy in the kernel
    #[arg(long, default_value = "sealroot", value_name = "NAME")]
    policy_name: String,
    /// policy_version MAJOR.MINOR.REVISION (each 0..65535)
    #[arg(long, default_value = "1.0.0", value_name = "X.Y.Z")]
    policy_version: String,
    /// op=KMODULE: signed, any or deny
    #[arg(long, default_value = "signed", value_name = "TRUST")]
    kernel_modules: Trust,
    /// op=FIRMWARE: signed, any or deny
    #[arg(long, default_value = "signed", value_name = "TRUST")]
    firmware: Trust,
    /// op=KEXEC_IMAGE and op=KEXEC_INITRAMFS: signed, any or deny
    #[arg(long, default_value = "deny", value_name = "TRUST")]
    kexec: Trust,
    /// op=POLICY (policies the kernel reads from files, e.g. IMA's): signed, any or deny
    #[arg(long, default_value = "signed", value_name = "TRUST")]
    policy_files: Trust,
    /// op=X509_CERT (certificates the kernel reads from files): signed, any or deny
    #[arg(long, default_value = "signed", value_name = "TRUST")]
    x509_certs: Trust,
    /// Write the policy here (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SignPolicyArgs {
    /// The policy text
    policy: PathBuf,
    /// Private key (PEM/DER; PKCS#8, PKCS#1, SEC1); or use --sign-command
    #[arg(
        long,
        value_name = "KEYFILE",
        required_unless_present = "sign_command",
        conflicts_with = "sign_command"
    )]
    key: Option<PathBuf>,
    /// The signer's certificate (the one enrolled in db/MOK, or issued by it)
    #[arg(long, value_name = "CERTFILE")]
    cert: PathBuf,
    /// Sign by running this shell command (the protocol of `oci seal --help`)
    #[arg(long, value_name = "COMMAND")]
    sign_command: Option<String>,
    /// Do not embed the signer certificate (openssl smime -nocerts)
    #[arg(long)]
    no_embed_cert: bool,
    /// Where to write the signed policy
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: IpeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        IpeCommand::Policy(a) => policy(&a),
        IpeCommand::Sign(a) => sign(&a),
        IpeCommand::Show { file, trust, json } => show(&file, &trust, json),
    }
}

fn policy(a: &PolicyArgs) -> anyhow::Result<ExitCode> {
    let sealed = SealedPolicy {
        name: a.policy_name.parse().map_err(anyhow::Error::msg)?,
        version: a
            .policy_version
            .parse::<Version>()
            .map_err(anyhow::Error::msg)?,
        kernel_modules: a.kernel_modules,
        firmware: a.firmware,
        kexec: a.kexec,
        policy_files: a.policy_files,
        x509_certs: a.x509_certs,
    };
    let text = sealed.policy().to_text();
    match &a.out {
        Some(out) => atomic::write(out, Mode::Umask, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn sign(a: &SignPolicyArgs) -> anyhow::Result<ExitCode> {
    use sealroot::crypto::command::CommandSigner;
    use sealroot::crypto::key::KeySigner;
    use sealroot::ipe::sign::{PolicySignError, sign_policy};
    let text =
        std::fs::read(&a.policy).with_context(|| format!("cannot read {}", a.policy.display()));
    let text = match text {
        Ok(t) => t,
        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
    };
    let prepared = (|| -> anyhow::Result<(Cert, Box<dyn Signer>)> {
        let mut certs = Cert::load(&a.cert)?;
        if certs.len() != 1 {
            anyhow::bail!(
                "{}: holds {} certificates; --cert wants the signer's only",
                a.cert.display(),
                certs.len()
            );
        }
        let cert = certs.remove(0);
        let signer: Box<dyn Signer> = match (&a.key, &a.sign_command) {
            (Some(k), _) => {
                let s = KeySigner::load(k)?;
                s.key().check_matches(s.origin(), &cert)?;
                Box::new(s)
            }
            (None, Some(cmd)) => Box::new(CommandSigner::new(cmd.clone(), cert.key_algorithm())),
            (None, None) => anyhow::bail!("give --key or --sign-command"),
        };
        Ok((cert, signer))
    })();
    let (cert, signer) = match prepared {
        Ok(x) => x,
        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
    };
    match sign_policy(&text, signer.as_ref(), &cert, !a.no_embed_cert) {
        Ok((policy, der)) => {
            atomic::write(&a.out, Mode::Umask, &der)?;
            outln!(
                "signed IPE policy '{}' {} ({} rules) by {} -> {}",
                policy.name,
                policy.version,
                policy.rules.len(),
                cert.subject(),
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ PolicySignError::Policy(_)) => Ok(fail(
            EXIT_REFUSED,
            &anyhow::Error::new(e).context(a.policy.display().to_string()),
        )),
        Err(e) => Ok(fail(EXIT_INPUT, &anyhow::Error::new(e))),
    }
}

fn show(file: &std::path::Path, trust: &TrustArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let trusted = match trust.load() {
        Ok(t) => t,
        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
    };
    let der = match std::fs::read(file).with_context(|| format!("cannot read {}", file.display())) {
        Ok(d) => d,
        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
    };
    let signed = match SignedPolicy::parse(&der) {
        Ok(s) => s,
        Err(e) => {
            return Ok(fail(
                EXIT_REFUSED,
                &anyhow::Error::new(e).context(file.display().to_string()),
            ));
        }
    };
    let verified = (!trusted.is_empty()).then(|| sealroot::pkcs7::verify_attached(&der, &trusted));
    let p = &signed.policy;
    let rules: Vec<String> = Op::ALL
        .iter()
        .flat_map(|op| {
            p.rules_for(*op)
                .map(|r| r.to_string())
                .chain(
                    p.op_defaults[Op::ALL.iter().position(|o| o == op).unwrap_or(0)]
                        .map(|a| format!("DEFAULT op={op} action={a}")),
                )
                .collect::<Vec<_>>()
        })
        .collect();
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": file,
                "name": p.name,
                "version": p.version,
                "sha256": sealroot::oci::Sha256Digest::of(&der),
                "signer": signed.signer,
                "globalDefault": p.global_default,
                "rules": rules,
                "verifiedBy": verified.as_ref().and_then(|v| v.as_ref().ok()).map(|(v, _)| &v.trusted),
                "verifyError": verified.as_ref().and_then(|v| v.as_ref().err()).map(|e| e.to_string()),
            }))?
        );
    } else {
        outln!(
            "{}: IPE policy '{}' {} signed by {}",
            file.display(),
            p.name,
            p.version,
            signed.signer_description()
        );
        if let Some(a) = p.global_default {
            outln!("  DEFAULT action={a}");
        }
        for r in &rules {
            outln!("  {r}");
        }
        match &verified {
            Some(Ok((v, _))) => outln!("verified by {}", v.trusted),
            Some(Err(e)) => outln!("NOT verified: {e}"),
            None => outln!("(signature not checked: no --cert)"),
        }
    }
    Ok(match verified {
        Some(Err(_)) => ExitCode::from(EXIT_REFUSED),
        _ => ExitCode::SUCCESS,
    })
}
