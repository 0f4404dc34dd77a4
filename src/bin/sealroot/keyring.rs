//! `sealroot keyring add|list|seal`: the kernel's `.fs-verity` keyring.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use sealroot::crypto::Cert;
use sealroot::keyring::{self, FsVerityKeyring, Restriction};

use super::sign::{EXIT_INPUT, EXIT_REFUSED, fail};

const KEYRING_AFTER_HELP: &str = "\
How the keyring, builtin signatures and sealing relate:
  fs-verity checks a file's builtin signature (see `sealroot sign --help`)
  against the certificates in the kernel's `.fs-verity` keyring, when
  verity is enabled with a signature and when the file is first opened
  after boot. Whoever can add a certificate to that keyring can make any
  file pass. So the initramfs loads the trusted certificates and then seals
  the keyring, before any signed file is opened. Sealing lasts until reboot:

  seal            no key can be added any more (add fails with EPERM);
  seal --ca=CA    only certificates signed by CA's key can be added later
                  (add fails with ENOKEY/EKEYREJECTED otherwise); CA is
                  added to the keyring if it is not there yet;
  seal --chain    only certificates signed by a key already in the keyring.
                  Any certificate in it can then vouch for new ones,
                  including leaf certificates: prefer --ca.

  Sealing governs which certificates can join the keyring, not which chains
  fs-verity accepts: a signature that embeds its signer certificate is
  accepted if ANY key in the keyring signed that certificate. The kernel
  checks neither basicConstraints nor keyUsage there (Linux 6.12), so a leaf
  certificate in the keyring can vouch for others. `sealroot verify` refuses
  such chains; keep leaf certificates out of the keyring when signatures
  embed certificates.

  The keyring is found through /proc/keys (it is not searchable by name).
  Needs root.

Examples (initramfs):
  sealroot keyring add /etc/sealroot/certs      # every *.pem/*.crt/*.der in it
  sealroot keyring seal
  sealroot keyring list --json

Exit status: 0 done, 1 the kernel refused (the message names the errno,
e.g. \"EPERM: the .fs-verity keyring is sealed\"), 3 unreadable or
unusable certificate, or no .fs-verity keyring.";

/// Manage the kernel's .fs-verity keyring (add certificates, list, seal).
#[derive(Args, Debug)]
#[command(after_long_help = KEYRING_AFTER_HELP)]
pub struct KeyringArgs {
    #[command(subcommand)]
    command: KeyringCommand,

    /// Operate on this keyring (serial number, decimal or 0x-hex) instead
    /// of .fs-verity; for tests and for staging keys in a private keyring.
    #[arg(long, global = true, value_name = "SERIAL", value_parser = parse_serial)]
    keyring_id: Option<i32>,
}

#[derive(Subcommand, Debug)]
enum KeyringCommand {
    /// Add certificates (PEM or DER files, or directories of them).
    Add {
        #[arg(required = true, value_name = "CERT|DIR")]
        certs: Vec<PathBuf>,
        /// Print a JSON array of the added keys.
        #[arg(long)]
        json: bool,
    },
    /// List the keys in the keyring.
    List {
        /// Certificates (files or directories) to match against the keys,
        /// to show their fingerprints.
        #[arg(long, value_name = "CERT|DIR")]
        cert: Vec<PathBuf>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Seal the keyring: reject all further keys, or only admit
    /// certificates signed by a CA. Irreversible until reboot.
    Seal {
        /// Only admit certificates signed by this CA certificate's key.
        #[arg(long, value_name = "CERT", conflicts_with = "chain")]
        ca: Option<PathBuf>,
        /// Only admit certificates signed by a key already in the keyring.
        #[arg(long)]
        chain: bool,
    },
}

fn parse_serial(s: &str) -> Result<i32, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).map(|v| v as i32),
        None => s.parse::<i32>(),
    };
    parsed.map_err(|_| format!("not a key serial number: {s:?}"))
}

pub fn run(args: KeyringArgs) -> Result<ExitCode> {
    let ring = match args.keyring_id {
        Some(serial) => FsVerityKeyring::from_serial(serial),
        None => match FsVerityKeyring::find() {
            Ok(r) => r,
            Err(e) => return Ok(fail(EXIT_INPUT, &e.into())),
        },
    };
    match args.command {
        KeyringCommand::Add { certs, json } => {
            let certs = match Cert::load_all(&certs) {
                Ok(c) => c,
                Err(e) => return Ok(fail(EXIT_INPUT, &e.into())),
            };
            let mut added = Vec::new();
            for cert in &certs {
                match ring.add(cert) {
                    Ok(serial) => {
                        if !json {
                            outln!("Added {} as key {serial} ({serial:#x})", cert.info());
                        }
                        added.push(serde_json::json!({ "serial": serial, "cert": cert.info() }));
                    }
                    Err(e) => return Ok(refused(e)),
                }
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&added)?);
            }
        }
        KeyringCommand::List { cert, json } => {
            let known = match Cert::load_all(&cert) {
                Ok(c) => c,
                Err(e) => return Ok(fail(EXIT_INPUT, &e.into())),
            };
            let entries = match ring.list(&known) {
                Ok(e) => e,
                Err(e) => return Ok(refused(e)),
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                outln!(
                    "keyring {} ({:#x}): {} keys",
                    ring.serial(),
                    ring.serial(),
                    entries.len()
                );
                for e in &entries {
                    out!("{:>10} {:<10} {}", e.serial, e.key_type, e.description);
                    if let Some(c) = &e.cert {
                        out!("  [{} from {}]", c.fingerprint, c.origin);
                    }
                    outln!();
                }
            }
        }
        KeyringCommand::Seal { ca, chain } => {
            let done = match (ca, chain) {
                (Some(path), _) => {
                    let ca = match load_one(&path) {
                        Ok(c) => c,
                        Err(e) => return Ok(fail(EXIT_INPUT, &e)),
                    };
                    ring.seal_to_ca(&ca).map(|key| {
                        format!(
                            "only certificates signed by {} (key {key}) can be added",
                            ca.info()
                        )
                    })
                }
                (None, true) => ring
                    .seal(Restriction::SignedByKeyring)
                    .map(|()| "only certificates signed by a key in it can be added".into()),
                (None, false) => ring
                    .seal(Restriction::RejectAll)
                    .map(|()| "no key can be added any more".into()),
            };
            match done {
                Ok(what) => outln!(
                    "Sealed keyring {} ({:#x}): {what}",
                    ring.serial(),
                    ring.serial()
                ),
                Err(e) => return Ok(refused(e)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_one(path: &std::path::Path) -> Result<Cert> {
    let mut certs = Cert::load(path)?;
    if certs.len() != 1 {
        anyhow::bail!(
            "{}: expected one CA certificate, found {}",
            path.display(),
            certs.len()
        );
    }
    Ok(certs.remove(0))
}

fn refused(e: keyring::Error) -> ExitCode {
    let code = match e {
        keyring::Error::NotACa { .. } => EXIT_INPUT,
        _ => EXIT_REFUSED,
    };
    fail(code, &anyhow::Error::new(e))
}
