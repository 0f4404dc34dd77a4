//! What a boot produced: the console text, the parsed `@@bed` result lines
//! (see `bed.sh` for the protocol) and assertion helpers whose failures show
//! the relevant console tail.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::host::tail_lines;

/// How many console lines failure messages show.
pub const TAIL_LINES: usize = 40;

/// One `bed_run` in the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub name: String,
    /// The exit code (`128 + signal` when killed by a signal).
    pub rc: i32,
    /// Wall time in the VM, milliseconds (10 ms resolution).
    pub ms: u64,
    /// The command as `"$*"`.
    pub command: String,
    pub stdout: String,
    pub stderr: String,
}

/// How the scenario ended, from the `@@bed done` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The scenario ran; its exit code.
    Rc(i32),
    /// A setup step of the test init (module load, mount) failed; the
    /// scenario did not run. The step's result line has the details.
    SetupFailed(String),
}

/// Everything parsed from the result channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Results {
    /// `uname -r` in the VM, from the `start` line.
    pub release: Option<String>,
    /// Uptime (ms) when /init started and when the scenario finished.
    pub init_ms: Option<u64>,
    pub done_ms: Option<u64>,
    pub commands: Vec<CommandResult>,
    pub values: Vec<(String, String)>,
    pub done: Option<Done>,
    /// Lines that start with `@@bed` but could not be parsed.
    pub malformed: Vec<String>,
}

impl Results {
    /// Parses the result channel's text. Unrelated lines are ignored; a
    /// malformed or unterminated `@@bed` line (e.g. cut short by a killed
    /// VM) is kept in `malformed` instead of failing the whole parse.
    pub fn parse(text: &str) -> Results {
        let mut results = Results::default();
        for raw in text.split_inclusive('\n') {
            let line = raw.trim_end_matches(['\r', '\n']);
            let Some(rest) = line.strip_prefix("@@bed ") else {
                continue;
            };
            // A line without its newline was cut short (VM killed mid-write).
            if !raw.ends_with('\n') || results.parse_line(rest).is_none() {
                results.malformed.push(line.to_string());
            }
        }
        results
    }

    fn parse_line(&mut self, rest: &str) -> Option<()> {
        let mut words = rest.split(' ');
        let kind = words.next()?;
        let name = words.next()?.to_string();
        let mut fields = std::collections::BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=')?;
            let value = match value.strip_prefix("b64:") {
                Some(encoded) => decode(encoded)?,
                None => value.to_string(),
            };
            fields.insert(key, value);
        }
        let number = |key: &str| fields.get(key)?.parse::<u64>().ok();
        match kind {
            "start" => {
                self.release = Some(fields.get("release")?.clone());
                self.init_ms = number("ms");
            }
            "result" => self.commands.push(CommandResult {
                rc: fields.get("rc")?.parse().ok()?,
                ms: number("ms")?,
                command: fields.get("cmd")?.clone(),
                stdout: fields.get("stdout")?.clone(),
                stderr: fields.get("stderr")?.clone(),
                name,
            }),
            "value" => self.values.push((name, fields.get("value")?.clone())),
            "done" => {
                self.done_ms = number("ms");
                self.done = Some(match fields.get("setup_failed") {
                    Some(step) => Done::SetupFailed(step.clone()),
                    None => Done::Rc(fields.get("rc")?.parse().ok()?),
                });
            }
            _ => return None,
        }
        Some(())
    }
}

fn decode(encoded: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The outcome of one VM boot.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// The VM's name (the test's name unless set).
    pub name: String,
    /// Wall time from starting QEMU to its exit.
    pub elapsed: Duration,
    /// The console log on disk (`<cache>/logs/<name>.log`).
    pub log_path: PathBuf,
    /// How QEMU ended (`exit status: 0`).
    pub qemu_exit: String,
    console: String,
    results: Results,
}

impl BootLog {
    pub fn new(
        name: String,
        console: String,
        results: Results,
        elapsed: Duration,
        log_path: PathBuf,
        qemu_exit: String,
    ) -> BootLog {
        BootLog {
            name,
            elapsed,
            log_path,
            qemu_exit,
            console,
            results,
        }
    }

    /// Requires the scenario to have run to its end (`@@bed done - rc=N`);
    /// otherwise says why not (kernel panic, dead /init, failed setup step
    /// in the VM), with the console tail. [`crate::Vm::run`] checks this.
    pub fn require_done(&self) -> Result<()> {
        let reason = match self.done() {
            Some(Done::Rc(_)) => return Ok(()),
            Some(Done::SetupFailed(step)) => {
                let detail = self
                    .result(step)
                    .map(|r| format!("rc={}, stderr: {}", r.rc, r.stderr.trim()))
                    .unwrap_or_default();
                format!("setup step `{step}` failed in the VM ({detail})")
            }
            // The panic line itself: a long call trace can push it out of
            // the console tail.
            None => match self.console.lines().find(|l| l.contains("Kernel panic")) {
                Some(panic) => format!(
                    "no `@@bed done` line (QEMU {}): {}",
                    self.qemu_exit,
                    panic.trim()
                ),
                None => format!(
                    "no `@@bed done` line (QEMU {}; a kernel panic or a dead /init ends the VM \
                     early)",
                    self.qemu_exit
                ),
            },
        };
        Err(Error::Incomplete {
            name: self.name.clone(),
            reason,
            log: self.log_path.clone(),
            tail: self.console_tail(TAIL_LINES),
        })
    }

    /// The whole serial console (kernel and init output).
    pub fn console(&self) -> &str {
        &self.console
    }

    /// The last `n` console lines.
    pub fn console_tail(&self, n: usize) -> String {
        tail_lines(&self.console, n)
    }

    /// Everything the result channel reported.
    pub fn results(&self) -> &Results {
        &self.results
    }

    /// `uname -r` as seen in the VM.
    pub fn release(&self) -> Option<&str> {
        self.results.release.as_deref()
    }

    /// Whether the scenario reported completion (`@@bed done`).
    pub fn done(&self) -> Option<&Done> {
        self.results.done.as_ref()
    }

    /// The result of `bed_run NAME ...` (the last one, if the name repeats).
    pub fn result(&self, name: &str) -> Result<Checked<'_>> {
        match self.results.commands.iter().rev().find(|r| r.name == name) {
            Some(result) => Ok(Checked { log: self, result }),
            None => {
                let known: Vec<&str> = self
                    .results
                    .commands
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                Err(self.failure(&format!(
                    "no result named `{name}` (results: {})",
                    list(&known)
                )))
            }
        }
    }

    /// The value of `bed_value NAME ...` (the last one, if the name repeats).
    pub fn value(&self, name: &str) -> Result<&str> {
        match self.results.values.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) => Ok(value),
            None => {
                let known: Vec<&str> = self
                    .results
                    .values
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                Err(self.failure(&format!(
                    "no value named `{name}` (values: {})",
                    list(&known)
                )))
            }
        }
    }

    /// The scenario's exit code must be 0.
    pub fn assert_scenario_ok(&self) -> Result<&Self> {
        match self.done() {
            Some(Done::Rc(0)) => Ok(self),
            other => Err(self.failure(&format!("expected the scenario to exit 0, got {other:?}"))),
        }
    }

    /// The console must contain `needle`.
    pub fn assert_console_contains(&self, needle: &str) -> Result<&Self> {
        if self.console.contains(needle) {
            Ok(self)
        } else {
            Err(self.failure(&format!("console does not contain {needle:?}")))
        }
    }

    /// The console must not contain `needle`.
    pub fn assert_console_lacks(&self, needle: &str) -> Result<&Self> {
        match self.console.lines().find(|l| l.contains(needle)) {
            None => Ok(self),
            Some(line) => Err(self.failure(&format!("console contains {needle:?}: {line}"))),
        }
    }

    /// An assertion error naming this VM, with the console tail.
    pub fn failure(&self, what: &str) -> Error {
        let mut msg = format!("VM `{}`: {what}\n", self.name);
        if !self.results.malformed.is_empty() {
            let _ = writeln!(
                msg,
                "  malformed result lines: {:?}",
                self.results.malformed
            );
        }
        let _ = write!(
            msg,
            "  scenario: {}\n  console log: {}\n--- console tail ---\n{}--- end of console ---",
            match self.done() {
                Some(Done::Rc(rc)) => format!("finished, rc={rc}"),
                Some(Done::SetupFailed(step)) => format!("not run, setup step {step} failed"),
                None => "did not finish".into(),
            },
            self.log_path.display(),
            self.console_tail(TAIL_LINES)
        );
        Error::Assertion(msg)
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A command result with assertion helpers; derefs to [`CommandResult`].
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    log: &'a BootLog,
    result: &'a CommandResult,
}

impl std::ops::Deref for Checked<'_> {
    type Target = CommandResult;
    fn deref(&self) -> &CommandResult {
        self.result
    }
}

impl<'a> Checked<'a> {
    /// The command must have exited 0.
    pub fn assert_ok(self) -> Result<Self> {
        self.check(self.rc == 0, "expected rc=0")
    }

    /// The command must have exited with `rc`.
    pub fn assert_rc(self, rc: i32) -> Result<Self> {
        self.check(self.rc == rc, &format!("expected rc={rc}"))
    }

    /// The command must have failed (any non-zero exit code).
    pub fn assert_failed(self) -> Result<Self> {
        self.check(self.rc != 0, "expected a failure (rc != 0)")
    }

    pub fn assert_stdout_contains(self, needle: &str) -> Result<Self> {
        self.check(
            self.stdout.contains(needle),
            &format!("expected stdout to contain {needle:?}"),
        )
    }

    pub fn assert_stderr_contains(self, needle: &str) -> Result<Self> {
        self.check(
            self.stderr.contains(needle),
            &format!("expected stderr to contain {needle:?}"),
        )
    }

    /// stdout or stderr must contain `needle`.
    pub fn assert_output_contains(self, needle: &str) -> Result<Self> {
        let found = self.stdout.contains(needle) || self.stderr.contains(needle);
        self.check(
            found,
            &format!("expected stdout or stderr to contain {needle:?}"),
        )
    }

    /// stdout must be exactly `expected`.
    pub fn assert_stdout_eq(self, expected: &str) -> Result<Self> {
        self.check(
            self.stdout == expected,
            &format!("expected stdout to be exactly {expected:?}"),
        )
    }

    fn check(self, ok: bool, expectation: &str) -> Result<Self> {
        if ok {
            return Ok(self);
        }
        let r = self.result;
        let mut what = format!(
            "result `{}`: {expectation}, got rc={}\n  command: {} ({} ms)\n",
            r.name, r.rc, r.command, r.ms
        );
        for (label, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            if text.is_empty() {
                let _ = writeln!(what, "  {label}: (empty)");
            } else {
                let _ = writeln!(what, "  {label}:");
                for line in tail_lines(text, TAIL_LINES).lines() {
                    let _ = writeln!(what, "    | {line}");
                }
            }
        }
        Err(self.log.failure(what.trim_end()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn sample_log() -> BootLog {
        let channel = format!(
            "@@bed start - release=6.12.95+deb12-cloud-amd64 ms=3120\r\n\
             noise that is not ours\n\
             @@bed result hello rc=0 ms=10 cmd=b64:{} stdout=b64:{} stderr=b64:\n\
             @@bed result fails rc=1 ms=20 cmd=b64:{} stdout=b64: stderr=b64:{}\n\
             @@bed value answer value=b64:{}\n\
             @@bed result cut rc=0 ms=1 cmd=b64:ZWNobw== stdout=b64:aGk\n\
             @@bed done - rc=0 ms=4000\n\
             @@bed value unterminated value=b64:",
            b64("echo hi"),
            b64("hi\n"),
            b64("cat /nope"),
            b64("cat: can't open '/nope': No such file or directory\n"),
            b64("42 with spaces"),
        );
        let results = Results::parse(&channel);
        BootLog::new(
            "sample".into(),
            "console line 1\n[bed] result hello rc=0\nlast console line\n".into(),
            results,
            Duration::from_secs(5),
            PathBuf::from("/tmp/sample.log"),
            "exit status: 0".into(),
        )
    }

    #[test]
    fn parses_every_kind_of_line() {
        let log = sample_log();
        let r = log.results();
        assert_eq!(r.release.as_deref(), Some("6.12.95+deb12-cloud-amd64"));
        assert_eq!((r.init_ms, r.done_ms), (Some(3120), Some(4000)));
        assert_eq!(r.done, Some(Done::Rc(0)));
        assert_eq!(r.commands.len(), 2);
        assert_eq!(
            r.malformed.len(),
            2,
            "cut lines are kept aside: {:?}",
            r.malformed
        );
        let hello = log.result("hello").unwrap();
        assert_eq!(
            (hello.rc, hello.stdout.as_str(), hello.command.as_str()),
            (0, "hi\n", "echo hi")
        );
        assert_eq!(log.value("answer").unwrap(), "42 with spaces");
    }

    #[test]
    fn setup_failure_is_reported() {
        let r = Results::parse("@@bed done - setup_failed=bed:mount:/mnt/disk ms=1\n");
        assert_eq!(
            r.done,
            Some(Done::SetupFailed("bed:mount:/mnt/disk".into()))
        );
    }

    #[test]
    fn assertions_pass_and_fail_with_context() {
        let log = sample_log();
        log.result("hello")
            .unwrap()
            .assert_ok()
            .unwrap()
            .assert_stdout_eq("hi\n")
            .unwrap();
        log.result("fails")
            .unwrap()
            .assert_rc(1)
            .unwrap()
            .assert_failed()
            .unwrap()
            .assert_output_contains("No such file")
            .unwrap();
        let err = log
            .result("fails")
            .unwrap()
            .assert_ok()
            .unwrap_err()
            .to_string();
        for needle in [
            "VM `sample`: result `fails`: expected rc=0, got rc=1",
            "command: cat /nope (20 ms)",
            "stdout: (empty)",
            "    | cat: can't open '/nope'",
            "console log: /tmp/sample.log",
            "last console line",
            "malformed result lines",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err = log.result("nope").unwrap_err().to_string();
        assert!(
            err.contains("no result named `nope` (results: hello, fails)"),
            "{err}"
        );
        assert!(log.assert_console_contains("console line 1").is_ok());
        let err = log.assert_console_lacks("line 1").unwrap_err().to_string();
        assert!(
            err.contains("console contains \"line 1\": console line 1"),
            "{err}"
        );
    }
}
