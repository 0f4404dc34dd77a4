//! Messages: one line each, prefixed `sealroot:`, to the kernel log
//! (`/dev/kmsg`, with a `<N>` syslog level so `dmesg` and the console show
//! it even before any logging daemon runs) and to stderr (the console or
//! the journal, whichever the caller connected).

use std::fs::File;
use std::io::Write;

/// Syslog levels (`include/linux/kern_levels.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `KERN_ERR`: the flow failed.
    Err = 3,
    /// `KERN_WARNING`: something is off, the boot goes on.
    Warning = 4,
    /// `KERN_NOTICE`: what was mounted, or why nothing was.
    Notice = 5,
    /// `KERN_INFO`: details.
    Info = 6,
}

/// Where messages go.
#[derive(Debug)]
pub struct Log {
    kmsg: Option<File>,
    stderr: bool,
}

impl Log {
    /// Logs to `/dev/kmsg` (if it can be opened) and stderr.
    pub fn open() -> Log {
        Log {
            kmsg: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok(),
            stderr: true,
        }
    }

    /// A log that writes nowhere (tests).
    pub fn silent() -> Log {
        Log {
            kmsg: None,
            stderr: false,
        }
    }

    /// Writes one message. Newlines inside it are replaced so a problem is
    /// always exactly one line.
    pub fn log(&mut self, level: Level, msg: &str) {
        let line: String = msg
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        if let Some(k) = &mut self.kmsg {
            // One write() is one kmsg record; the kernel caps a record at
            // about 1 KiB, so long messages are cut there.
            let record = format!("<{}>sealroot: {line}\n", level as u8);
            let _ = k.write_all(&record.as_bytes()[..record.len().min(1000)]);
        }
        if self.stderr {
            let _ = writeln!(std::io::stderr(), "sealroot: {line}");
        }
    }

    /// A problem: `sealroot: error: <msg>`, the one line per problem
    /// that tests and humans look for.
    pub fn error(&mut self, msg: &str) {
        self.log(Level::Err, &format!("error: {msg}"))
    }

    /// Logs a warning.
    pub fn warn(&mut self, msg: &str) {
        self.log(Level::Warning, msg)
    }

    /// Logs a notice.
    pub fn notice(&mut self, msg: &str) {
        self.log(Level::Notice, msg)
    }

    /// Logs an informational line.
    pub fn info(&mut self, msg: &str) {
        self.log(Level::Info, msg)
    }
}
