//! What the kernel and the composefs format can hold, checked when a tree
//! is filled so that writers never meet it.

use super::Error;

/// `EROFS_NAME_LEN` / `LCFS_MAX_NAME_LENGTH`: a file name, excluding NUL.
pub const MAX_NAME_LEN: usize = 255;
/// `PATH_MAX - 1`: mkcomposefs rejects symlink targets and payloads of
/// `PATH_MAX` (4096) bytes or more (`lcfs_node_set_payload`).
pub const MAX_SYMLINK_LEN: usize = 4095;
/// `XATTR_NAME_MAX` (`include/uapi/linux/limits.h`).
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// `XATTR_SIZE_MAX` and the EROFS `e_value_size` (`__le16`).
pub const MAX_XATTR_VALUE_LEN: usize = 65535;
/// `LCFS_INLINE_CONTENT_MAX`: the most inline content mkcomposefs accepts.
pub const MAX_INLINE_CONTENT: usize = 5000;

/// `LCFS_INODE_EXTERNAL_XATTR_MAX` (`UINT16_MAX / 2`): mkcomposefs' bound
/// on the estimated size of one inode's xattrs from external input,
/// estimated as 12 bytes of header plus `2 * 4 - 1 + name + value` per
/// xattr (`lcfs_node_set_xattr_internal`), which keeps every inode's xattr
/// area within its 16-bit `i_xattr_icount`.
const XATTR_BUDGET: usize = u16::MAX as usize / 2;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A directory entry name: 1..=255 bytes, no `/` or NUL, not `.` or `..`.
pub fn validate_name(name: &[u8]) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "names cannot be empty"
    } else if name.len() > MAX_NAME_LEN {
        "names are at most 255 bytes"
    } else if name == b"." || name == b".." {
        "`.` and `..` are implicit in every directory"
    } else if name.contains(&b'/') {
        "names cannot contain `/`"
    } else if name.contains(&0) {
        "names cannot contain NUL bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: lossy(name),
        reason,
    })
}

pub(super) fn symlink_target(target: &[u8]) -> Result<(), Error> {
    let reason = if target.is_empty() {
        "a symlink needs a non-empty target"
    } else if target.len() > MAX_SYMLINK_LEN {
        "symlink targets are at most 4095 bytes (PATH_MAX - 1)"
    } else if target.contains(&0) {
        "symlink targets cannot contain NUL bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSymlink {
        target: lossy(&target[..target.len().min(64)]),
        reason,
    })
}

pub(super) fn payload(p: &[u8]) -> Result<(), Error> {
    let reason = if p.len() > MAX_SYMLINK_LEN {
        "backing-file paths are at most 4095 bytes (PATH_MAX - 1)"
    } else if p.contains(&0) {
        "backing-file paths cannot contain NUL bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidSymlink {
        target: lossy(&p[..p.len().min(64)]),
        reason,
    })
}

pub(super) fn xattr(name: &[u8], value: &[u8]) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "xattr names cannot be empty"
    } else if name.len() > MAX_XATTR_NAME_LEN {
        "xattr names are at most 255 bytes (XATTR_NAME_MAX)"
    } else if name.contains(&0) {
        "xattr names cannot contain NUL bytes"
    } else {
        if value.len() > MAX_XATTR_VALUE_LEN {
            return Err(Error::XattrValueTooLong {
                name: lossy(name),
                len: value.len(),
            });
        }
        return Ok(());
    };
    Err(Error::InvalidXattrName {
        name: lossy(&name[..name.len().min(64)]),
        reason,
    })
}

/// Checks the estimated xattr area of one inode (see [`XATTR_BUDGET`]).
pub(super) fn xattr_budget(sizes: impl Iterator<Item = (usize, usize)>) -> Result<(), Error> {
    let size = 12 + sizes.map(|(n, v)| 2 * 4 - 1 + n + v).sum::<usize>();
    if size > XATTR_BUDGET {
        return Err(Error::XattrsTooLarge {
            size,
            max: XATTR_BUDGET,
        });
    }
    Ok(())
}
