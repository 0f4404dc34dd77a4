//! A [`Signer`] that runs an external command: for keys held in an HSM, a
//! KMS or on a smartcard, where sealroot never sees the private key.
//!
//! # Protocol
//!
//! The command line is run with `/bin/sh -c COMMAND` (so it may be a
//! pipeline and use the variables below), once per signature, with:
//!
//! - **stdin**: the exact bytes to sign (for fs-verity: the 12-byte header
//!   `"FSVerity" | le16 algorithm | le16 digest size` followed by the
//!   digest, i.e. the kernel's `fsverity_formatted_digest`); then EOF;
//! - **environment**:
//!   - `SEALROOT_SIGN_DIGEST_ALGORITHM`: `sha256`, `sha384` or `sha512`,
//!     the hash the signature must use;
//!   - `SEALROOT_SIGN_DIGEST`: that hash of stdin, lower-case hex (for
//!     interfaces that sign a prehashed digest);
//!   - `SEALROOT_SIGN_KEY_ALGORITHM`: the certificate's key, `rsa` or
//!     `ecdsa`;
//! - **stdout**: the raw signature and nothing else: RSA PKCS#1 v1.5
//!   (RFC 8017 8.2.1, over the DigestInfo of that hash; as many bytes as
//!   the modulus) or ECDSA as a DER `Ecdsa-Sig-Value` (RFC 5480) — exactly
//!   what `openssl dgst -sign` and `openssl pkeyutl -sign` print;
//! - **exit status** 0; anything else fails the signing, and stderr is
//!   shown.
//!
//! The signature is verified against the signer certificate before it is
//! used (`pkcs7::sign`), so a command using the wrong key or algorithm
//! fails at signing time with "does not verify".
//!
//! # Examples (tested in `tests/seal_cli.rs`)
//!
//! ```text
//! # the message on stdin, hashed by openssl:
//! --sign-command 'openssl dgst -"$SEALROOT_SIGN_DIGEST_ALGORITHM" -sign /keys/signer.key.pem'
//! # a prehashed digest (what HSM/KMS "sign digest" APIs take): the raw
//! # digest bytes into `openssl pkeyutl` (or the hex $SEALROOT_SIGN_DIGEST
//! # into a KMS API):
//! --sign-command 'openssl dgst -"$SEALROOT_SIGN_DIGEST_ALGORITHM" -binary |
//!     openssl pkeyutl -sign -inkey /keys/signer.key.pem -pkeyopt digest:"$SEALROOT_SIGN_DIGEST_ALGORITHM"'
//! ```
//!
//! With a PKCS#11 token, the same `openssl pkeyutl` line takes
//! `-inkey 'pkcs11:object=…'` through OpenSSL's pkcs11 provider.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use super::{KeyAlgorithm, SignRequest, Signer, SignerError};

/// More than any RSA-4096 or ECDSA signature; a command printing more is
/// broken.
const MAX_SIGNATURE: u64 = 4096;
/// stderr kept for the error message.
const MAX_STDERR: u64 = 8192;

/// Signs by running a shell command (see the module docs for the
/// protocol).
#[derive(Debug, Clone)]
pub struct CommandSigner {
    command: String,
    key: KeyAlgorithm,
}

impl CommandSigner {
    /// `key` is the algorithm of the certificate's key (the command is told
    /// it in `SEALROOT_SIGN_KEY_ALGORITHM`).
    pub fn new(command: impl Into<String>, key: KeyAlgorithm) -> Self {
        CommandSigner {
            command: command.into(),
            key,
        }
    }

    fn run(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, String> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env(
                "SEALROOT_SIGN_DIGEST_ALGORITHM",
                request.digest_algorithm.name(),
            )
            .env("SEALROOT_SIGN_DIGEST", hex::encode(request.digest))
            .env(
                "SEALROOT_SIGN_KEY_ALGORITHM",
                match self.key {
                    KeyAlgorithm::Rsa { .. } => "rsa",
                    KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => "ecdsa",
                },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let message = request.message.to_vec();
        // Written from a thread: a command that prints before reading all of
        // stdin must not deadlock against us.
        let writer = std::thread::spawn(move || {
            // A command that does not read stdin (prehashed flow) closes
            // the pipe: EPIPE is not an error then.
            match stdin.write_all(&message) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r,
            }
        });
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let err = child.stderr.take().ok_or("no stderr pipe")?;
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.take(MAX_STDERR).read_to_end(&mut buf);
            buf
        });
        out.take(MAX_SIGNATURE + 1)
            .read_to_end(&mut stdout)
            .map_err(|e| format!("reading its output: {e}"))?;
        let status = child.wait().map_err(|e| format!("waiting for it: {e}"))?;
        stderr.extend(err_reader.join().unwrap_or_default());
        let wrote = writer.join().unwrap_or(Ok(()));
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        if !status.success() {
            return Err(format!(
                "exited with {status}{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            ));
        }
        if let Err(e) = wrote {
            return Err(format!("writing the message to its stdin: {e}"));
        }
        if stdout.is_empty() {
            return Err("printed no signature on stdout".into());
        }
        if stdout.len() as u64 > MAX_SIGNATURE {
            return Err(format!(
                "printed more than {MAX_SIGNATURE} bytes; expected a raw signature \
                 (PKCS#1 v1.5 or DER ECDSA), not PEM or a PKCS#7 message"
            ));
        }
        Ok(stdout)
    }
}

impl Signer for CommandSigner {
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, SignerError> {
        self.run(request)
            .map_err(|reason| SignerError::new(self.description(), reason))
    }

    fn description(&self) -> String {
        format!("signing command '{}'", self.command)
    }
}
