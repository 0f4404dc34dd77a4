//! Symbolic errno names for messages.
//!
//! Kernel errors in sealroot's messages always carry the errno's symbolic
//! name (`EKEYREJECTED`) besides its explanation, so people and test
//! scripts can match them. One table for the whole crate.

use std::borrow::Cow;

use rustix::io::Errno;

/// The symbolic name of an errno (`EKEYREJECTED`), so messages can be
/// matched by scripts and tests; numbers from `include/uapi/asm-generic/errno*.h`.
pub fn errno_name(errno: Errno) -> Cow<'static, str> {
    let name = match errno {
        Errno::PERM => "EPERM",
        Errno::NOENT => "ENOENT",
        Errno::INTR => "EINTR",
        Errno::IO => "EIO",
        Errno::BADF => "EBADF",
        Errno::NOMEM => "ENOMEM",
        Errno::ACCESS => "EACCES",
        Errno::FAULT => "EFAULT",
        Errno::BUSY => "EBUSY",
        Errno::EXIST => "EEXIST",
        Errno::NOTDIR => "ENOTDIR",
        Errno::ISDIR => "EISDIR",
        Errno::INVAL => "EINVAL",
        Errno::NOTTY => "ENOTTY",
        Errno::TXTBSY => "ETXTBSY",
        Errno::FBIG => "EFBIG",
        Errno::NOSPC => "ENOSPC",
        Errno::ROFS => "EROFS",
        Errno::NODATA => "ENODATA",
        Errno::NOPKG => "ENOPKG",
        Errno::BADMSG => "EBADMSG",
        Errno::OVERFLOW => "EOVERFLOW",
        Errno::MSGSIZE => "EMSGSIZE",
        Errno::OPNOTSUPP => "EOPNOTSUPP",
        Errno::DQUOT => "EDQUOT",
        Errno::NOKEY => "ENOKEY",
        Errno::KEYEXPIRED => "EKEYEXPIRED",
        Errno::KEYREVOKED => "EKEYREVOKED",
        Errno::KEYREJECTED => "EKEYREJECTED",
        Errno::NOSYS => "ENOSYS",
        Errno::LOOP => "ELOOP",
        Errno::NAMETOOLONG => "ENAMETOOLONG",
        Errno::NODEV => "ENODEV",
        Errno::DEADLK => "EDEADLK",
        Errno::NOTEMPTY => "ENOTEMPTY",
        Errno::XDEV => "EXDEV",
        Errno::NXIO => "ENXIO",
        Errno::AGAIN => "EAGAIN",
        Errno::SRCH => "ESRCH",
        Errno::STALE => "ESTALE",
        Errno::UCLEAN => "EUCLEAN",
        Errno::NOEXEC => "ENOEXEC",
        other => return Cow::Owned(format!("errno {}", other.raw_os_error())),
    };
    Cow::Borrowed(name)
}

/// The symbolic errno of an I/O error (`ENOENT`), or "error" if it has none.
pub fn io_errno_name(e: &std::io::Error) -> Cow<'static, str> {
    match e.raw_os_error() {
        Some(n) => errno_name(Errno::from_raw_os_error(n)),
        None => Cow::Borrowed("error"),
    }
}
