//! The repository lock: a `flock` on the repository directory itself
//! (docs/repository.md, "Locking"), and who holds it.

use std::fmt;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use super::{Dir, PathError};

/// A shared or exclusive `flock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `LOCK_SH`: readers (deploy, fsck) run side by side.
    Shared,
    /// `LOCK_EX`: gc runs alone.
    Exclusive,
}

/// A process that holds a lock another one waits for (from `/proc/locks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Its process id.
    pub pid: u32,
    /// Its command line, when readable.
    pub command: Option<String>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(c) = &self.command {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

impl Dir {
    /// Takes a `flock` on this directory (held until the last clone of
    /// this handle is dropped). When another process holds a conflicting
    /// one, `waiting` is told who (from `/proc/locks`) before this blocks.
    pub fn lock(
        &self,
        mode: LockMode,
        waiting: &mut dyn FnMut(&[LockHolder]),
    ) -> Result<(), PathError> {
        let (try_op, op) = match mode {
            LockMode::Shared => (
                FlockOperation::NonBlockingLockShared,
                FlockOperation::LockShared,
            ),
            LockMode::Exclusive => (
                FlockOperation::NonBlockingLockExclusive,
                FlockOperation::LockExclusive,
            ),
        };
        match rustix::fs::flock(&*self.fd, try_op) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK) => {}
            Err(errno) => return Err(self.io("", "cannot lock")(errno)),
        }
        waiting(&self.lock_holders());
        loop {
            match rustix::fs::flock(&*self.fd, op) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(self.io("", "cannot lock")(errno)),
            }
        }
    }

    /// The processes holding a `flock` on this directory (best effort:
    /// `/proc/locks` lists them by device and inode).
    pub fn lock_holders(&self) -> Vec<LockHolder> {
        let Ok(st) = rustix::fs::fstat(&*self.fd) else {
            return Vec::new();
        };
        let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
            return Vec::new();
        };
        #[allow(clippy::unnecessary_cast)] // u32 on some architectures
        let dev = st.st_dev as u64;
        let want = format!(
            "{:02x}:{:02x}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev),
            st.st_ino
        );
        holders_from_proc_locks(&locks, &want)
            .into_iter()
            .map(|pid| LockHolder {
                pid,
                command: std::fs::read(format!("/proc/{pid}/cmdline"))
                    .ok()
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        String::from_utf8_lossy(c.strip_suffix(b"\0").unwrap_or(&c))
                            .replace('\0', " ")
                    }),
            })
            .collect()
    }
}

/// The pids holding (not waiting for) a FLOCK on `dev_ino`
/// (`MAJ:MIN:INODE`, as fs/locks.c `lock_get_status()` prints it:
/// `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; waiters are the
/// lines with ` -> `).
fn holders_from_proc_locks(locks: &str, dev_ino: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for line in locks.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") || fields.get(1) != Some(&"FLOCK") {
            continue;
        }
        if fields.get(5) == Some(&dev_ino)
            && let Some(pid) = fields.get(4).and_then(|p| p.parse().ok())
            && !out.contains(&pid)
        {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines() {
        // Lines as fs/locks.c prints them (a holder, a waiter, a POSIX lock
        // on the same inode, a FLOCK on another).
        let locks = "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 999 fd:01:5678 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 55 fd:01:5678 0 EOF\n\
                     3: FLOCK  ADVISORY  READ 77 fd:01:9999 0 EOF\n\
                     4: FLOCK  ADVISORY  READ 78 fd:01:5678 0 EOF\n";
        assert_eq!(holders_from_proc_locks(locks, "fd:01:5678"), [1234, 78]);
        assert!(holders_from_proc_locks(locks, "fd:02:5678").is_empty());
    }
}
