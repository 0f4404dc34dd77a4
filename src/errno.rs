//! Symbolic errno names for messages.
//!
//! Kernel errors in sealroot's messages always carry the errno's symbolic
//! name (`EKEYREJECTED`) besides its explanation, so people and test
//! scripts can match them. One table for the whole crate.

use std::borrow::Cow;

use rustix::io::Errno;

/// Every errno sealroot branches on or explains, with its symbolic name
/// (`include/uapi/asm-generic/errno-base.h`, `errno.h`). A test checks that
/// each `Errno::X` the crate's sources mention is here.
const NAMES: &[(Errno, &str)] = &[
    (Errno::PERM, "EPERM"),
    (Errno::NOENT, "ENOENT"),
    (Errno::SRCH, "ESRCH"),
    (Errno::INTR, "EINTR"),
    (Errno::IO, "EIO"),
    (Errno::NXIO, "ENXIO"),
    (Errno::NOEXEC, "ENOEXEC"),
    (Errno::BADF, "EBADF"),
    (Errno::AGAIN, "EAGAIN"),
    (Errno::NOMEM, "ENOMEM"),
    (Errno::ACCESS, "EACCES"),
    (Errno::FAULT, "EFAULT"),
    (Errno::NOTBLK, "ENOTBLK"),
    (Errno::BUSY, "EBUSY"),
    (Errno::EXIST, "EEXIST"),
    (Errno::XDEV, "EXDEV"),
    (Errno::NODEV, "ENODEV"),
    (Errno::NOTDIR, "ENOTDIR"),
    (Errno::ISDIR, "EISDIR"),
    (Errno::INVAL, "EINVAL"),
    (Errno::NFILE, "ENFILE"),
    (Errno::MFILE, "EMFILE"),
    (Errno::NOTTY, "ENOTTY"),
    (Errno::TXTBSY, "ETXTBSY"),
    (Errno::FBIG, "EFBIG"),
    (Errno::NOSPC, "ENOSPC"),
    (Errno::ROFS, "EROFS"),
    (Errno::MLINK, "EMLINK"),
    (Errno::RANGE, "ERANGE"),
    (Errno::DEADLK, "EDEADLK"),
    (Errno::NAMETOOLONG, "ENAMETOOLONG"),
    (Errno::NOSYS, "ENOSYS"),
    (Errno::NOTEMPTY, "ENOTEMPTY"),
    (Errno::LOOP, "ELOOP"),
    (Errno::NODATA, "ENODATA"),
    (Errno::NOPKG, "ENOPKG"),
    (Errno::BADMSG, "EBADMSG"),
    (Errno::OVERFLOW, "EOVERFLOW"),
    (Errno::MSGSIZE, "EMSGSIZE"),
    (Errno::OPNOTSUPP, "EOPNOTSUPP"),
    (Errno::STALE, "ESTALE"),
    (Errno::DQUOT, "EDQUOT"),
    (Errno::NOKEY, "ENOKEY"),
    (Errno::KEYEXPIRED, "EKEYEXPIRED"),
    (Errno::KEYREVOKED, "EKEYREVOKED"),
    (Errno::KEYREJECTED, "EKEYREJECTED"),
    (Errno::UCLEAN, "EUCLEAN"),
];

/// The symbolic name of an errno (`EKEYREJECTED`), so messages can be
/// matched by scripts and tests; `errno N` for one sealroot never meets.
pub fn errno_name(errno: Errno) -> Cow<'static, str> {
    match NAMES.iter().find(|(e, _)| *e == errno) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(format!("errno {}", errno.raw_os_error())),
    }
}

/// The symbolic errno of an I/O error (`ENOENT`), or "error" if it has none.
pub fn io_errno_name(e: &std::io::Error) -> Cow<'static, str> {
    match e.raw_os_error() {
        Some(n) => errno_name(Errno::from_raw_os_error(n)),
        None => Cow::Borrowed("error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names checked against the numbers in
    /// `include/uapi/asm-generic/errno*.h` (x86_64 uses the generic table).
    #[test]
    fn names_match_the_kernel_numbers() {
        for (number, name) in [
            (1, "EPERM"),
            (13, "EACCES"),
            (15, "ENOTBLK"),
            (34, "ERANGE"),
            (61, "ENODATA"),
            (95, "EOPNOTSUPP"),
            (117, "EUCLEAN"),
            (126, "ENOKEY"),
            (129, "EKEYREJECTED"),
        ] {
            assert_eq!(errno_name(Errno::from_raw_os_error(number)), name);
        }
        assert_eq!(errno_name(Errno::from_raw_os_error(4095)), "errno 4095");
    }

    #[test]
    fn names_are_unique() {
        for (i, (errno, name)) in NAMES.iter().enumerate() {
            assert!(
                NAMES[i + 1..].iter().all(|(e, n)| e != errno && n != name),
                "{name} is listed twice"
            );
        }
    }

    /// Every `Errno::X` in the crate's sources (`src/`) has a name here, so
    /// a message about an errno the code branches on never reads `errno 15`.
    /// rustix's constant names are the C names without the `E`, except
    /// `ACCESS` (`EACCES`) and the alias `WOULDBLOCK` (`EAGAIN`).
    #[test]
    fn every_errno_the_code_mentions_is_named() {
        fn walk(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs")
                    // This file is the table itself (and its prose names `Errno::X`).
                    && !path.ends_with("src/errno.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("Errno::") {
                        let ident: String = text[at + 7..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        if !ident.is_empty() {
                            found.push((ident, path.display().to_string()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 50, "the scan found only {found:?}");
        let names: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
        for (ident, file) in found {
            let c_name = match ident.as_str() {
                "ACCESS" => "EACCES".to_owned(),
                // The same number as EAGAIN on Linux (asm-generic/errno.h).
                "WOULDBLOCK" => "EAGAIN".to_owned(),
                other => format!("E{other}"),
            };
            assert!(
                names.contains(&c_name.as_str()),
                "{file} uses Errno::{ident}, which errno_name does not name ({c_name})"
            );
        }
    }
}
