//! `sealroot keygen`: throwaway signing keys and certificates the kernel
//! accepts, for demos and tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use sealroot::crypto::builder::{Issuer, Role, issue};
use sealroot::crypto::{Cert, KeyAlgorithm, PrivateKey};

use super::sign::{EXIT_INPUT, fail};
use sealroot::atomic::{self, Mode};

const KEYGEN_AFTER_HELP: &str = "\
Writes PEM files into --out-dir (never overwriting without --force):
  ca.key.pem, ca.crt.pem          a CA (basicConstraints cA=TRUE, keyCertSign)
  signer.key.pem, signer.crt.pem  a signing certificate issued by that CA
                                  (cA=FALSE, keyUsage digitalSignature)
With --self-signed, only signer.* (its own issuer). With --ca-cert/--ca-key,
only signer.*, issued by that existing CA.

Keys are PKCS#8 PEM (mode 0600); certificates X.509 v3 PEM with
subjectKeyIdentifier/authorityKeyIdentifier, as the kernel's X.509 parser
expects. These are for demos and tests: for production, keep the CA key
offline (or in an HSM) and issue signing certificates from it.

Typical use:
  sealroot keygen --out-dir=keys --type=p256
  sealroot sign --embed-cert FILE FILE.sig --key=keys/signer.key.pem --cert=keys/signer.crt.pem
  # initramfs: trust the CA only, then seal so only CA-issued certs can join
  sealroot keyring add keys/ca.crt.pem && sealroot keyring seal --ca=keys/ca.crt.pem";

/// Generate a throwaway CA and a signing certificate (PEM) the kernel accepts.
#[derive(Args, Debug)]
#[command(after_long_help = KEYGEN_AFTER_HELP)]
pub struct KeygenArgs {
    /// Directory for the key and certificate files (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,

    /// Key type (for the CA and the signer).
    #[arg(long = "type", value_enum, default_value = "rsa2048")]
    key_type: KeyType,

    /// Subject of the signing certificate (RFC 4514).
    #[arg(long, default_value = "CN=sealroot signer")]
    subject: String,

    /// Subject of the CA certificate (RFC 4514).
    #[arg(long, default_value = "CN=sealroot test CA")]
    ca_subject: String,

    /// Make only a self-signed signing certificate, no CA.
    #[arg(long, conflicts_with_all = ["ca_cert", "ca_key"])]
    self_signed: bool,

    /// Issue the signing certificate from this existing CA certificate...
    #[arg(long, value_name = "CERT", requires = "ca_key")]
    ca_cert: Option<PathBuf>,

    /// ...and its private key.
    #[arg(long, value_name = "KEY", requires = "ca_cert")]
    ca_key: Option<PathBuf>,

    /// Validity in days, from now.
    #[arg(long, default_value_t = 3650)]
    days: u32,

    /// Overwrite existing files.
    #[arg(long)]
    force: bool,

    /// Print a JSON object describing the files.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum KeyType {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
}

impl KeyType {
    fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeyType::Rsa2048 => KeyAlgorithm::Rsa { bits: 2048 },
            KeyType::Rsa3072 => KeyAlgorithm::Rsa { bits: 3072 },
            KeyType::Rsa4096 => KeyAlgorithm::Rsa { bits: 4096 },
            KeyType::P256 => KeyAlgorithm::EcdsaP256,
            KeyType::P384 => KeyAlgorithm::EcdsaP384,
        }
    }
}

pub fn run(args: KeygenArgs) -> Result<ExitCode> {
    match keygen(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(fail(EXIT_INPUT, &e)),
    }
}

fn keygen(args: &KeygenArgs) -> Result<()> {
    let dir = &args.out_dir;
    let mut outputs: Vec<(&str, &str)> = vec![("signer.key.pem", "signer.crt.pem")];
    let make_ca = !args.self_signed && args.ca_cert.is_none();
    if make_ca {
        outputs.insert(0, ("ca.key.pem", "ca.crt.pem"));
    }
    if !args.force {
        for name in outputs.iter().flat_map(|(k, c)| [k, c]) {
            let path = dir.join(name);
            if path.exists() {
                bail!("{} exists; pass --force to overwrite", path.display());
            }
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create '{}': {e}", dir.display()))?;
    let alg = args.key_type.algorithm();
    let mut written = serde_json::Map::new();

    let existing_ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => {
            let mut certs = Cert::load(cert)?;
            if certs.len() != 1 {
                bail!(
                    "{}: expected one CA certificate, found {}",
                    cert.display(),
                    certs.len()
                );
            }
            Some((certs.remove(0), PrivateKey::load(key)?))
        }
        _ => None,
    };
    let new_ca = if make_ca {
        let key = PrivateKey::generate(alg)?;
        let cert = issue(
            &key,
            &args.ca_subject,
            Role::Ca,
            Issuer::SelfSigned,
            args.days,
        )?;
        save(dir, "ca", &key, &cert, &mut written)?;
        Some((cert, key))
    } else {
        None
    };
    let key = PrivateKey::generate(alg)?;
    let issuer = match existing_ca.as_ref().or(new_ca.as_ref()) {
        Some((cert, key)) => Issuer::Ca { cert, key },
        None => Issuer::SelfSigned,
    };
    let cert = issue(&key, &args.subject, Role::Signer, issuer, args.days)?;
    save(dir, "signer", &key, &cert, &mut written)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&written)?);
    } else {
        for (name, v) in &written {
            outln!(
                "{name}: {} {} ({}, '{}', {})",
                v["key"].as_str().unwrap_or_default(),
                v["cert"].as_str().unwrap_or_default(),
                v["key_type"].as_str().unwrap_or_default(),
                v["subject"].as_str().unwrap_or_default(),
                v["fingerprint"].as_str().unwrap_or_default(),
            );
        }
    }
    Ok(())
}

fn save(
    dir: &Path,
    name: &str,
    key: &PrivateKey,
    cert: &Cert,
    written: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let key_path = dir.join(format!("{name}.key.pem"));
    let cert_path = dir.join(format!("{name}.crt.pem"));
    atomic::write(&key_path, Mode::Private, key.to_pkcs8_pem()?.as_bytes())?;
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert.der())
        .map_err(|e| anyhow::anyhow!("cannot encode certificate: {e}"))?;
    atomic::write(&cert_path, Mode::Umask, pem.as_bytes())?;
    written.insert(
        name.to_owned(),
        serde_json::json!({
            "key": key_path,
            "cert": cert_path,
            "key_type": key.algorithm().to_string(),
            "subject": cert.subject(),
            "fingerprint": cert.fingerprint(),
        }),
    );
    Ok(())
}
