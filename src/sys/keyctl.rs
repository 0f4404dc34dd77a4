//! `add_key(2)` and the `keyctl(2)` operations the `.fs-verity` keyring
//! needs (`include/uapi/linux/keyctl.h`, `security/keys/keyctl.c`).
//!
//! linux-keyutils 0.2 only creates "user" keys, cannot address a keyring by
//! serial number (`KeyRing::from_id` is private), and cannot describe or
//! list "asymmetric" keys, so these few calls are made directly.

use std::ffi::CStr;

use rustix::io::Errno;

/// A key or keyring serial number (`key_serial_t`).
pub type KeySerial = i32;

const KEYCTL_DESCRIBE: libc::c_long = 6;
const KEYCTL_READ: libc::c_long = 11;
const KEYCTL_RESTRICT_KEYRING: libc::c_long = 29;

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(ret)
    }
}

/// `add_key(type, description, payload, keyring)`: creates a key and links
/// it into `keyring`; returns its serial.
pub fn add_key(
    key_type: &CStr,
    description: &CStr,
    payload: &[u8],
    keyring: KeySerial,
) -> Result<KeySerial, Errno> {
    // SAFETY: both strings are NUL-terminated and outlive the call; the
    // payload pointer/length pair describes a live slice the kernel only
    // reads; no pointer is retained after the syscall returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            key_type.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            keyring,
        )
    };
    check(ret).map(|serial| serial as KeySerial)
}

/// Calls a keyctl operation that fills a buffer (`DESCRIBE`, `READ`),
/// growing the buffer until the kernel's answer fits.
fn read_buffer(op: libc::c_long, key: KeySerial) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: the pointer/length pair describes `buf`, which lives
        // across the call; the kernel writes at most `buf.len()` bytes and
        // returns the size it needed.
        let ret = unsafe { libc::syscall(libc::SYS_keyctl, op, key, buf.as_mut_ptr(), buf.len()) };
        let needed = check(ret)? as usize;
        if needed <= buf.len() {
            buf.truncate(needed);
            return Ok(buf);
        }
        buf.resize(needed, 0);
    }
}

/// `KEYCTL_DESCRIBE`: `"type;uid;gid;perm;description"`.
pub fn describe(key: KeySerial) -> Result<String, Errno> {
    let mut buf = read_buffer(KEYCTL_DESCRIBE, key)?;
    if buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `KEYCTL_READ` on a keyring: the serials of the keys linked to it.
pub fn keyring_members(keyring: KeySerial) -> Result<Vec<KeySerial>, Errno> {
    let buf = read_buffer(KEYCTL_READ, keyring)?;
    Ok(buf
        .chunks_exact(4)
        .map(|c| KeySerial::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `KEYCTL_RESTRICT_KEYRING`: with no type and restriction, no key may be
/// linked to the keyring any more; with a type ("asymmetric") and a
/// restriction ("key_or_keyring:<serial>[:chain]"), only keys that pass it.
pub fn restrict_keyring(
    keyring: KeySerial,
    restriction: Option<(&CStr, &CStr)>,
) -> Result<(), Errno> {
    let (key_type, restriction) = match restriction {
        Some((t, r)) => (t.as_ptr(), r.as_ptr()),
        None => (std::ptr::null(), std::ptr::null()),
    };
    // SAFETY: both pointers are NUL-terminated strings that outlive the
    // call, or both NULL (keyctl_restrict_keyring() accepts NULL/NULL).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_RESTRICT_KEYRING,
            keyring,
            key_type,
            restriction,
        )
    };
    check(ret).map(|_| ())
}
