//! The kernel's fs-verity interface, typed: enable, measure, read metadata,
//! and "does this file have verity?".
//!
//! The user API is documented in `Documentation/filesystems/fsverity.rst`
//! ("User API"); constants and layouts come from
//! `include/uapi/linux/fsverity.h` (see `crate::sys::verity`). Functions
//! are fd-first (like rustix) and return [`Error`]s that name the errno
//! symbolically and say what to do. [`VerityFile`] opens a path read-only
//! (the kernel refuses to enable verity while any writable fd is open, with
//! ETXTBSY) and attaches the path to every error.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use super::descriptor::{Descriptor, DescriptorError};
use super::{FsVerityDigest, HashAlgorithm, VerityParams};
use crate::sys::verity as sys;

/// Largest builtin signature the kernel accepts: `FS_VERITY_MAX_SIGNATURE_SIZE`
/// (16 KiB descriptor limit minus the 256-byte descriptor, `fs/verity/enable.c`).
pub const MAX_SIGNATURE_SIZE: usize = 16384 - 256;

/// The kernel operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `FS_IOC_ENABLE_VERITY`.
    Enable,
    /// `FS_IOC_MEASURE_VERITY`.
    Measure,
    /// `FS_IOC_READ_VERITY_METADATA` of one item.
    ReadMetadata(MetadataType),
    /// `statx` / `FS_IOC_GETFLAGS`, asking whether a file has verity.
    QueryFlags,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Enable => f.write_str("FS_IOC_ENABLE_VERITY"),
            Op::Measure => f.write_str("FS_IOC_MEASURE_VERITY"),
            Op::ReadMetadata(t) => write!(f, "FS_IOC_READ_VERITY_METADATA ({t})"),
            Op::QueryFlags => f.write_str("FS_IOC_GETFLAGS"),
        }
    }
}

/// The items `FS_IOC_READ_VERITY_METADATA` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataType {
    /// The Merkle tree blocks, root level first.
    MerkleTree,
    /// The 256-byte `struct fsverity_descriptor` (with `sig_size` 0).
    Descriptor,
    /// The builtin signature given to FS_IOC_ENABLE_VERITY, if any.
    Signature,
}

impl MetadataType {
    /// Every item, in the kernel's order.
    pub const ALL: [MetadataType; 3] = [
        MetadataType::MerkleTree,
        MetadataType::Descriptor,
        MetadataType::Signature,
    ];

    fn kernel_id(self) -> u64 {
        match self {
            MetadataType::MerkleTree => sys::METADATA_TYPE_MERKLE_TREE,
            MetadataType::Descriptor => sys::METADATA_TYPE_DESCRIPTOR,
            MetadataType::Signature => sys::METADATA_TYPE_SIGNATURE,
        }
    }

    /// The name `fsverity dump_metadata` uses.
    pub fn name(self) -> &'static str {
        match self {
            MetadataType::MerkleTree => "merkle_tree",
            MetadataType::Descriptor => "descriptor",
            MetadataType::Signature => "signature",
        }
    }
}

impl fmt::Display for MetadataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MetadataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown metadata type {s:?}: expected merkle_tree, descriptor or signature"
                )
            })
    }
}

/// Errors from the fs-verity kernel interface.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel call failed; the message names the errno and explains it.
    #[error("{op} failed on {}: {}: {}", Target(.path), errno_name(*.errno), explain(*.op, *.errno))]
    Kernel {
        /// The call.
        op: Op,
        /// The file, when known.
        path: Option<PathBuf>,
        /// What the kernel returned.
        errno: Errno,
    },
    /// Opening failed. For a verity file this is where the kernel checks
    /// its builtin signature (each time it loads the verity metadata), so
    /// ENOKEY, EKEYREJECTED, EBADMSG and EPERM are explained in those terms.
    /// (`error` is not a `source`: the message already says it, and
    /// `anyhow`'s `{:#}` would repeat it.)
    #[error("cannot open '{}' for reading: {}: {}", .path.display(), io_errno_name(.error), explain_open(.error))]
    Open {
        /// The file.
        path: PathBuf,
        /// What open(2) returned.
        error: std::io::Error,
    },
    /// The kernel reported an algorithm number sealroot does not know.
    #[error("{}: the kernel reported fs-verity hash algorithm {id}, which sealroot does not know (1 = sha256, 2 = sha512)", Target(.path))]
    UnknownAlgorithm {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The number reported.
        id: u16,
    },
    /// The kernel returned a descriptor that does not parse.
    #[error("{}: the kernel returned a malformed fs-verity descriptor: {error}", Target(.path))]
    Descriptor {
        /// The file, when known.
        path: Option<PathBuf>,
        /// Why it does not parse.
        error: DescriptorError,
    },
    /// A signature over the kernel's size limit.
    #[error("{}: builtin signature is {size} bytes; the kernel accepts at most {MAX_SIGNATURE_SIZE}", Target(.path))]
    SignatureTooLarge {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The signature's size in bytes.
        size: usize,
    },
}

impl Error {
    /// The errno of a failed kernel call, for callers that branch on it.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Open { error, .. } => error.raw_os_error().map(Errno::from_raw_os_error),
            _ => None,
        }
    }

    /// Attaches the file's path (the fd-level functions do not know it).
    pub fn at(mut self, file: &Path) -> Self {
        match &mut self {
            Error::Kernel { path, .. }
            | Error::UnknownAlgorithm { path, .. }
            | Error::Descriptor { path, .. }
            | Error::SignatureTooLarge { path, .. } => *path = Some(file.to_owned()),
            Error::Open { .. } => {}
        }
        self
    }

    fn kernel(op: Op, errno: Errno) -> Self {
        Error::Kernel {
            op,
            path: None,
            errno,
        }
    }
}

/// A result of the fs-verity interface.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an optional path as `'path'` or "the file".
struct Target<'a>(&'a Option<PathBuf>);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "'{}'", p.display()),
            None => f.write_str("the file"),
        }
    }
}

pub use crate::errno::{errno_name, io_errno_name};

const NO_VERITY_SUPPORT: &str = "fs-verity is not available for this file: either the kernel \
was built without CONFIG_FS_VERITY, or the filesystem lacks the 'verity' feature (create it with \
`mkfs.ext4 -O verity` or `mkfs.f2fs -O verity`, or enable it with `tune2fs -O verity` on the \
unmounted ext4 device)";
const NOT_IMPLEMENTED: &str = "this filesystem does not implement fs-verity at all; \
use ext4, f2fs or btrfs (tmpfs, overlayfs, NFS, ... cannot hold verity files)";
const NOT_VERITY: &str = "the file does not have fs-verity enabled; enable it with \
`sealroot enable FILE`";

/// What an errno means for `op`, and what to do about it
/// (`Documentation/filesystems/fsverity.rst` lists each ioctl's errors).
fn explain(op: Op, errno: Errno) -> Cow<'static, str> {
    let text = match (op, errno) {
        (_, Errno::OPNOTSUPP) => NO_VERITY_SUPPORT,
        (_, Errno::NOTTY) => match op {
            Op::ReadMetadata(_) => {
                "this filesystem does not implement fs-verity, or the kernel is older than \
                 Linux 5.12 (which added FS_IOC_READ_VERITY_METADATA)"
            }
            _ => NOT_IMPLEMENTED,
        },
        (Op::ReadMetadata(MetadataType::Signature), Errno::NODATA) => {
            "the file has no builtin signature (fs-verity was enabled without one), or does not \
             have fs-verity enabled at all"
        }
        (Op::Measure | Op::ReadMetadata(_), Errno::NODATA) => NOT_VERITY,
        (Op::Enable, Errno::EXIST) => {
            "the file already has fs-verity enabled; `sealroot measure FILE` shows its digest"
        }
        (Op::Enable, Errno::TXTBSY) => {
            "the file is open for writing (by this or another process, or a writable mmap); \
             close all writers and retry"
        }
        (Op::Enable, Errno::INVAL) => {
            "the kernel rejected the parameters: the Merkle tree block size must not exceed the \
             page size or the filesystem block size (4096 is safe), the hash algorithm must be \
             one it knows, and the file must be a regular file"
        }
        (Op::Enable, Errno::MSGSIZE) => {
            "the salt or the builtin signature is too large (salt at most 32 bytes, signature \
             at most 16128 bytes)"
        }
        (Op::Enable, Errno::NOKEY) => {
            "the .fs-verity keyring does not hold the certificate that made the builtin \
             signature (while the keyring is empty the kernel answers ENOKEY to any signature, \
             even a malformed one); load the signer's certificate into it (`sealroot keyring add \
             CERT`, or `keyctl padd asymmetric '' %keyring:.fs-verity < cert.der`) before enabling"
        }
        (Op::Enable, Errno::KEYREJECTED) => {
            "the builtin signature does not verify against the key in the .fs-verity keyring: \
             it was made for another file digest, other parameters (hash algorithm, block size, \
             salt), or with a different key; or it breaks the kernel's PKCS#7 rules (S/MIME \
             capabilities attribute, content type other than id-data, an embedded certificate \
             its issuer did not sign). `sealroot verify FILE SIG --cert=CERT` names the cause"
        }
        (Op::Enable, Errno::BADMSG) => {
            "the builtin signature is malformed or carries attached content: it must be a \
             detached DER PKCS#7 SignedData over the formatted digest (`sealroot sign` or \
             `fsverity sign` make one)"
        }
        (Op::Enable, Errno::PERM) => {
            "the file is append-only, or the kernel requires builtin signatures \
             (fs.verity.require_signatures = 1) and none was given"
        }
        (Op::Enable, Errno::ACCESS) => {
            "enabling fs-verity needs write permission on the file (although it is opened \
             read-only)"
        }
        (Op::Enable, Errno::ROFS) => {
            "the filesystem is mounted read-only; enable verity before sealing it, or remount \
             read-write"
        }
        (Op::Enable, Errno::FBIG) => "the file is too large for fs-verity on this filesystem",
        // fs/verity/hash_algs.c (a known but unbuilt hash), or
        // crypto/asymmetric_keys/pkcs7_parser.c (an algorithm in the
        // signature it does not handle).
        (Op::Enable, Errno::NOPKG) => {
            "the kernel lacks an algorithm: the builtin signature uses one its PKCS#7 code does \
             not accept (RSA-PSS, Ed25519, sha256WithRSAEncryption as the SignerInfo algorithm: \
             sign with `sealroot sign`, which uses rsaEncryption or ecdsa-with-SHA*), or the \
             kernel was built without the fs-verity hash (e.g. sha512 without \
             CONFIG_CRYPTO_SHA512)"
        }
        (Op::Enable, Errno::BUSY) => "fs-verity is already being enabled on this file",
        (Op::Enable, Errno::ISDIR) => "fs-verity applies to regular files, not directories",
        (Op::Enable, Errno::INTR) => "interrupted by a fatal signal; the file was not changed",
        (Op::Enable, Errno::NOSPC | Errno::DQUOT) => {
            "no space left for the Merkle tree (about 1/127 of the file size)"
        }
        (Op::ReadMetadata(_), Errno::INVAL) => {
            "the kernel does not know this metadata type or rejected the arguments"
        }
        (_, errno) => {
            return Cow::Owned(std::io::Error::from_raw_os_error(errno.raw_os_error()).to_string());
        }
    };
    Cow::Borrowed(text)
}

/// Why opening a file failed. fs-verity checks a file's builtin signature
/// when it loads the file's verity metadata: at FS_IOC_ENABLE_VERITY and at
/// the first open after boot or after the inode was evicted
/// (`fs/verity/open.c`, `fsverity_create_info()` ->
/// `fsverity_verify_signature()` in `fs/verity/signature.c`).
fn explain_open(error: &std::io::Error) -> Cow<'static, str> {
    let Some(errno) = error.raw_os_error().map(Errno::from_raw_os_error) else {
        return Cow::Owned(error.to_string());
    };
    let text = match errno {
        Errno::NOKEY => {
            "the file has a builtin fs-verity signature, and the .fs-verity keyring does not \
             hold the certificate that made it (the kernel checks the signature whenever it \
             loads the file's verity metadata, e.g. at the first open after boot; an empty \
             keyring refuses every signed file); load the signer's certificate with `sealroot \
             keyring add CERT` before opening signed files"
        }
        Errno::KEYREJECTED => {
            "the file's builtin fs-verity signature does not verify with the certificate in the \
             .fs-verity keyring that it names (a certificate with the same issuer or key id but \
             another key, or a signature for other content)"
        }
        Errno::BADMSG => {
            "the file's builtin fs-verity signature is malformed (not a PKCS#7 message the \
             kernel can parse)"
        }
        Errno::PERM => {
            "if the file has fs-verity without a builtin signature, the kernel requires \
             signatures (fs.verity.require_signatures = 1); otherwise a security module refused"
        }
        _ => return Cow::Owned(error.to_string()),
    };
    Cow::Borrowed(text)
}

/// Enables fs-verity on an open file (`FS_IOC_ENABLE_VERITY`), optionally
/// with a builtin signature (DER PKCS#7 over the [`super::FormattedDigest`]).
///
/// The file must be open read-only: the kernel fails with ETXTBSY while any
/// writable file descriptor exists. This builds the Merkle tree in the
/// kernel and reads the whole file.
pub fn enable(fd: impl AsFd, params: &VerityParams, signature: Option<&[u8]>) -> Result<()> {
    let signature = signature.unwrap_or_default();
    if signature.len() > MAX_SIGNATURE_SIZE {
        return Err(Error::SignatureTooLarge {
            path: None,
            size: signature.len(),
        });
    }
    sys::enable_verity(
        fd,
        params.algorithm.kernel_id().into(),
        params.block_size.get(),
        params.salt.as_bytes(),
        signature,
    )
    .map_err(|e| Error::kernel(Op::Enable, e))
}

/// The file's fs-verity digest as the kernel computed it
/// (`FS_IOC_MEASURE_VERITY`); constant time.
pub fn measure(fd: impl AsFd) -> Result<FsVerityDigest> {
    let mut out = [0u8; sys::MAX_DIGEST_SIZE];
    let (id, size) =
        sys::measure_verity(fd, &mut out).map_err(|e| Error::kernel(Op::Measure, e))?;
    let algorithm = u8::try_from(id)
        .ok()
        .and_then(|id| HashAlgorithm::from_kernel_id(id).ok())
        .ok_or(Error::UnknownAlgorithm { path: None, id })?;
    FsVerityDigest::new(algorithm, &out[..size])
        .map_err(|_| Error::kernel(Op::Measure, Errno::OVERFLOW))
}

/// One `FS_IOC_READ_VERITY_METADATA` call, like `pread`: the number of
/// bytes of `kind` at `offset` copied into `buf`; 0 at the end. May return
/// fewer bytes than asked for without being at the end.
pub fn read_metadata(
    fd: impl AsFd,
    kind: MetadataType,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize> {
    sys::read_verity_metadata(fd, kind.kernel_id(), offset, buf)
        .map_err(|e| Error::kernel(Op::ReadMetadata(kind), e))
}

/// A whole metadata item: reads at increasing offsets until the kernel
/// returns 0 (a short read is not the end: the ioctl may stop early).
pub fn read_metadata_all(fd: impl AsFd, kind: MetadataType) -> Result<Vec<u8>> {
    let fd = fd.as_fd();
    let mut out = Vec::new();
    let mut chunk = match kind {
        MetadataType::Descriptor => 4096,
        MetadataType::Signature => MAX_SIGNATURE_SIZE,
        MetadataType::MerkleTree => 64 * 1024,
    };
    loop {
        let start = out.len();
        out.resize(start + chunk, 0);
        let n = read_metadata(fd, kind, start as u64, &mut out[start..])?;
        out.truncate(start + n);
        if n == 0 {
            return Ok(out);
        }
        // Merkle trees can be large: grow the request geometrically.
        chunk = chunk.max(out.len()).min(16 << 20);
    }
}

/// The Merkle tree, in the layout `fsverity digest --out-merkle-tree` writes.
pub fn read_merkle_tree(fd: impl AsFd) -> Result<Vec<u8>> {
    read_metadata_all(fd, MetadataType::MerkleTree)
}

/// The file's fs-verity descriptor as stored by the filesystem.
pub fn read_descriptor(fd: impl AsFd) -> Result<Descriptor> {
    let bytes = read_metadata_all(fd, MetadataType::Descriptor)?;
    Descriptor::parse(&bytes).map_err(|source| Error::Descriptor {
        path: None,
        error: source,
    })
}

/// The builtin signature given when verity was enabled, or `None` if it was
/// enabled without one. Fails on a file without verity.
pub fn read_signature(fd: impl AsFd) -> Result<Option<Vec<u8>>> {
    let fd = fd.as_fd();
    match read_metadata_all(fd, MetadataType::Signature) {
        Ok(sig) => Ok(Some(sig)),
        // ENODATA means "no signature" on a verity file, "no verity"
        // otherwise (`fs/verity/read_metadata.c`): ask which.
        Err(e) if e.errno() == Some(Errno::NODATA) => {
            if has_verity(fd)? {
                Ok(None)
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether the file has fs-verity enabled: `STATX_ATTR_VERITY` where the
/// filesystem reports it, else `FS_VERITY_FL` from `FS_IOC_GETFLAGS`. A
/// filesystem that supports neither cannot hold verity files.
pub fn has_verity(fd: impl AsFd) -> Result<bool> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    let fd: BorrowedFd<'_> = fd.as_fd();
    if let Ok(st) = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::empty()) {
        if st.stx_attributes_mask.contains(StatxAttributes::VERITY) {
            return Ok(st.stx_attributes.contains(StatxAttributes::VERITY));
        }
    }
    match rustix::fs::ioctl_getflags(fd) {
        Ok(flags) => Ok(flags.bits() & sys::FS_VERITY_FL != 0),
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => Ok(false),
        Err(e) => Err(Error::kernel(Op::QueryFlags, e)),
    }
}

/// A file opened read-only for fs-verity operations; errors carry its path.
#[derive(Debug)]
pub struct VerityFile {
    file: File,
    path: PathBuf,
}

impl VerityFile {
    /// Opens `path` read-only (never for writing: see [`enable`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|error| Error::Open {
            path: path.to_owned(),
            error,
        })?;
        Ok(VerityFile {
            file,
            path: path.to_owned(),
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (read-only).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// [`enable`], with the path in errors.
    pub fn enable(&self, params: &VerityParams, signature: Option<&[u8]>) -> Result<()> {
        enable(&self.file, params, signature).map_err(|e| e.at(&self.path))
    }

    /// [`measure`], with the path in errors.
    pub fn measure(&self) -> Result<FsVerityDigest> {
        measure(&self.file).map_err(|e| e.at(&self.path))
    }

    /// [`read_metadata`], with the path in errors.
    pub fn read_metadata(&self, kind: MetadataType, offset: u64, buf: &mut [u8]) -> Result<usize> {
        read_metadata(&self.file, kind, offset, buf).map_err(|e| e.at(&self.path))
    }

    /// [`read_metadata_all`], with the path in errors.
    pub fn read_metadata_all(&self, kind: MetadataType) -> Result<Vec<u8>> {
        read_metadata_all(&self.file, kind).map_err(|e| e.at(&self.path))
    }

    /// [`read_merkle_tree`], with the path in errors.
    pub fn read_merkle_tree(&self) -> Result<Vec<u8>> {
        read_merkle_tree(&self.file).map_err(|e| e.at(&self.path))
    }

    /// [`read_descriptor`], with the path in errors.
    pub fn read_descriptor(&self) -> Result<Descriptor> {
        read_descriptor(&self.file).map_err(|e| e.at(&self.path))
    }

    /// [`read_signature`], with the path in errors.
    pub fn read_signature(&self) -> Result<Option<Vec<u8>>> {
        read_signature(&self.file).map_err(|e| e.at(&self.path))
    }

    /// [`has_verity`], with the path in errors.
    pub fn has_verity(&self) -> Result<bool> {
        has_verity(&self.file).map_err(|e| e.at(&self.path))
    }
}

impl AsFd for VerityFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_errno_and_path() {
        let e = Error::kernel(Op::Enable, Errno::KEYREJECTED).at(Path::new("/x/y"));
        let msg = e.to_string();
        assert!(msg.starts_with("FS_IOC_ENABLE_VERITY failed on '/x/y': EKEYREJECTED: "));
        assert!(msg.contains(".fs-verity keyring"));
        let msg = Error::kernel(Op::Enable, Errno::OPNOTSUPP).to_string();
        assert!(msg.contains("EOPNOTSUPP") && msg.contains("mkfs.ext4 -O verity"));
        assert!(msg.contains("tune2fs -O verity"));
        let msg = Error::kernel(Op::Measure, Errno::NODATA).to_string();
        assert!(msg.contains("ENODATA") && msg.contains("does not have fs-verity"));
        // Unlisted errnos fall back to strerror.
        let msg = Error::kernel(Op::Measure, Errno::IO).to_string();
        assert!(msg.contains("EIO: Input/output error"), "{msg}");
    }

    #[test]
    fn every_named_errno_is_distinct() {
        for (a, b) in [
            (Errno::OPNOTSUPP, "EOPNOTSUPP"),
            (Errno::NOKEY, "ENOKEY"),
            (Errno::KEYREJECTED, "EKEYREJECTED"),
            (Errno::BADMSG, "EBADMSG"),
            (Errno::PERM, "EPERM"),
            (Errno::NODATA, "ENODATA"),
        ] {
            assert_eq!(errno_name(a), b);
        }
        assert_eq!(errno_name(Errno::from_raw_os_error(4000)), "errno 4000");
    }

    #[test]
    fn metadata_type_names_round_trip() {
        for t in MetadataType::ALL {
            assert_eq!(t.name().parse::<MetadataType>().unwrap(), t);
        }
        assert!("tree".parse::<MetadataType>().is_err());
    }

    /// An ordinary file on whatever filesystem holds the temp dir: it has no
    /// verity, and measuring it fails with a kernel error naming the errno
    /// (ENODATA with fs-verity support, EOPNOTSUPP/ENOTTY without). The VM
    /// test bed covers the success paths on a verity-capable ext4.
    #[test]
    fn ordinary_file_has_no_verity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, b"hello").unwrap();
        let f = VerityFile::open(&path).unwrap();
        assert!(!f.has_verity().unwrap());
        let err = f.measure().unwrap_err();
        let errno = err.errno().unwrap();
        assert!(
            [Errno::NODATA, Errno::OPNOTSUPP, Errno::NOTTY].contains(&errno),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("'{}'", path.display())));
        let err = f.read_signature().unwrap_err();
        assert!(
            [Errno::NODATA, Errno::OPNOTSUPP, Errno::NOTTY].contains(&err.errno().unwrap()),
            "{err}"
        );
    }

    #[test]
    fn open_error_names_errno() {
        let err = VerityFile::open("/nonexistent/sealroot").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot open '/nonexistent/sealroot' for reading: ENOENT: \
             No such file or directory (os error 2)"
        );
        assert_eq!(err.errno(), Some(Errno::NOENT));
        // Signature errors at open are explained (the VM tests produce them).
        let err = Error::Open {
            path: "/x".into(),
            error: std::io::Error::from_raw_os_error(Errno::NOKEY.raw_os_error()),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot open '/x' for reading: ENOKEY: the file has a builtin")
                && msg.contains("sealroot keyring add CERT")
                && !msg.contains("os error"),
            "{msg}"
        );
    }

    #[test]
    fn oversized_signature_is_refused_before_the_kernel() {
        let f = tempfile::tempfile().unwrap();
        let sig = vec![0u8; MAX_SIGNATURE_SIZE + 1];
        let err = enable(&f, &VerityParams::sha256(), Some(&sig)).unwrap_err();
        assert!(matches!(err, Error::SignatureTooLarge { size, .. } if size == sig.len()));
    }
}
