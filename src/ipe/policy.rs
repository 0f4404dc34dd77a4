//! IPE policy text: the model, a parser that follows the kernel's grammar,
//! and the policy `sealroot ipe policy` writes for a sealed system.
//!
//! The grammar is Linux 6.12's `security/ipe/policy_parser.c`
//! (`ipe_parse_policy()`), restated here so that a policy can be checked on
//! the host before it is signed and shipped:
//!
//! - the text is split into lines at every `\n` and `\r`; everything from
//!   the first `#` of a line is a comment; trailing whitespace (`isspace`)
//!   is cut; empty lines are skipped;
//! - tokens are separated by spaces and tabs (nothing else);
//! - the first line is the header, exactly two tokens in this order:
//!   `policy_name=<non-empty>` and `policy_version=<u16>.<u16>.<u16>`
//!   (`kstrtou16` base 10: an optional `+`, decimal digits);
//! - every other line is a rule: `[DEFAULT] op=<OP> [<property>...]
//!   action=<ALLOW|DENY>`; `DEFAULT` lines carry no properties and set the
//!   default of one operation (`DEFAULT op=X action=Y`) or of all
//!   (`DEFAULT action=Y`), each at most once; other rules need an `op`;
//! - operations: `EXECUTE`, `FIRMWARE`, `KMODULE`, `KEXEC_IMAGE`,
//!   `KEXEC_INITRAMFS`, `POLICY`, `X509_CERT`; properties:
//!   `boot_verified=TRUE|FALSE`, `dmverity_roothash=<alg>:<hex>`,
//!   `dmverity_signature=TRUE|FALSE`, `fsverity_digest=<alg>:<hex>`,
//!   `fsverity_signature=TRUE|FALSE` (`ipe_digest_parse()`: `alg:hex`, the
//!   hex an even number of digits);
//! - the policy is valid only with a global default or a default for every
//!   operation (`validate_policy()`).
//!
//! This parser is stricter than the kernel in three places, all of which
//! only refuse policies the kernel would mis-handle: the text must be UTF-8
//! without NUL bytes (the kernel stops at a NUL), and the policy name must
//! be usable as the securityfs directory the kernel creates for it
//! (`policies/<name>`: no `/`, not `.` or `..`; sealroot allows
//! `[A-Za-z0-9._-]`, at most 255 bytes).

use std::fmt;
use std::str::FromStr;

/// An IPE operation (the `op=` of a rule), `enum ipe_op_type` in 6.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Op {
    /// `execve`, `mmap`/`mprotect` with `PROT_EXEC`.
    Execute,
    /// Firmware loaded by the kernel.
    Firmware,
    /// Kernel modules (`finit_module`, `init_module`).
    KernelModule,
    /// The kernel of `kexec_file_load`/`kexec_load`.
    KexecImage,
    /// The initramfs of `kexec_file_load`/`kexec_load`.
    KexecInitramfs,
    /// Policies read by the kernel (e.g. IMA's), not IPE's own.
    Policy,
    /// X.509 certificates read by the kernel.
    X509Cert,
}

impl Op {
    /// Every operation, in the kernel's order.
    pub const ALL: [Op; 7] = [
        Op::Execute,
        Op::Firmware,
        Op::KernelModule,
        Op::KexecImage,
        Op::KexecInitramfs,
        Op::Policy,
        Op::X509Cert,
    ];

    /// The keyword after `op=` (`operation_tokens` in policy_parser.c).
    pub fn keyword(self) -> &'static str {
        match self {
            Op::Execute => "EXECUTE",
            Op::Firmware => "FIRMWARE",
            Op::KernelModule => "KMODULE",
            Op::KexecImage => "KEXEC_IMAGE",
            Op::KexecInitramfs => "KEXEC_INITRAMFS",
            Op::Policy => "POLICY",
            Op::X509Cert => "X509_CERT",
        }
    }

    fn index(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }

    fn from_keyword(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.keyword() == s)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Action {
    /// `action=ALLOW`: the operation proceeds.
    Allow,
    /// `action=DENY`: the operation fails with EACCES.
    Deny,
}

impl Action {
    /// The keyword in policy text (`ALLOW`, `DENY`).
    pub fn keyword(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A digest value of `dmverity_roothash=` / `fsverity_digest=`:
/// `<algorithm>:<hex>`, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DigestValue {
    /// The algorithm name as written (e.g. `sha256`).
    pub algorithm: String,
    /// The digest in hex, as written.
    pub hex: String,
}

impl fmt::Display for DigestValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl DigestValue {
    /// `ipe_digest_parse()`: a `:` separates the algorithm from the digest,
    /// which `hex2bin` must decode completely.
    fn parse(s: &str) -> Result<DigestValue, String> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not <algorithm>:<hex digest>"))?;
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{hex:?} is not an even number of hex digits (the kernel's hex2bin refuses it)"
            ));
        }
        Ok(DigestValue {
            algorithm: alg.to_owned(),
            hex: hex.to_owned(),
        })
    }
}

/// A property a rule requires of the file (`property_tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Property {
    /// The file is on the initramfs the kernel unpacked at boot.
    BootVerified(bool),
    /// The file is on a dm-verity device with this root hash.
    DmVerityRoothash(DigestValue),
    /// The file is on a dm-verity device with a signed root hash.
    DmVeritySignature(bool),
    /// The file has fs-verity with this digest.
    FsVerityDigest(DigestValue),
    /// The file has fs-verity with a builtin signature the kernel checked
    /// against `.fs-verity`.
    FsVeritySignature(bool),
}

fn truth(b: bool) -> &'static str {
    if b { "TRUE" } else { "FALSE" }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Property::BootVerified(b) => write!(f, "boot_verified={}", truth(*b)),
            Property::DmVerityRoothash(d) => write!(f, "dmverity_roothash={d}"),
            Property::DmVeritySignature(b) => write!(f, "dmverity_signature={}", truth(*b)),
            Property::FsVerityDigest(d) => write!(f, "fsverity_digest={d}"),
            Property::FsVeritySignature(b) => write!(f, "fsverity_signature={}", truth(*b)),
        }
    }
}

impl Property {
    fn parse(t: &str) -> Result<Property, String> {
        let boolean = |v: &str| match v {
            "TRUE" => Some(true),
            "FALSE" => Some(false),
            _ => None,
        };
        let (key, value) = t
            .split_once('=')
            .ok_or_else(|| format!("{t:?} is not a property (key=value)"))?;
        let p = match key {
            "boot_verified" => boolean(value).map(Property::BootVerified),
            "dmverity_signature" => boolean(value).map(Property::DmVeritySignature),
            "fsverity_signature" => boolean(value).map(Property::FsVeritySignature),
            "dmverity_roothash" => Some(Property::DmVerityRoothash(DigestValue::parse(value)?)),
            "fsverity_digest" => Some(Property::FsVerityDigest(DigestValue::parse(value)?)),
            _ => {
                return Err(format!(
                    "unknown property {key:?} (Linux 6.12 knows boot_verified, \
                     dmverity_roothash, dmverity_signature, fsverity_digest, fsverity_signature)"
                ));
            }
        };
        p.ok_or_else(|| format!("{t:?}: the value must be TRUE or FALSE"))
    }
}

/// `policy_version=major.minor.revision`, each a `u16`. The kernel refuses
/// to activate a policy older than the active one and to update a policy
/// to a version that is not newer (`policy.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Revision.
    pub revision: u16,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Version {
    type Err = String;
    /// `parse_version()`: exactly three `.`-separated `kstrtou16(.., 10)`
    /// numbers (an optional leading `+`, at least one decimal digit).
    fn from_str(s: &str) -> Result<Version, String> {
        let bad = |why: &str| {
            format!("policy version {s:?}: {why} (expected MAJOR.MINOR.REVISION, each 0..65535)")
        };
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3 {
            return Err(bad("not three numbers"));
        }
        let mut n = [0u16; 3];
        for (slot, part) in n.iter_mut().zip(&parts) {
            let digits = part.strip_prefix('+').unwrap_or(part);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not a decimal number"));
            }
            *slot = digits.parse().map_err(|_| bad("larger than 65535"))?;
        }
        Ok(Version {
            major: n[0],
            minor: n[1],
            revision: n[2],
        })
    }
}

/// The policy name: the key of the policy in the kernel and the name of
/// its directory `/sys/kernel/security/ipe/policies/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyName(String);

impl PolicyName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sealroot`, the name `sealroot ipe policy` uses by default.
    pub fn default_name() -> PolicyName {
        PolicyName("sealroot".to_owned())
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for PolicyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl FromStr for PolicyName {
    type Err = String;
    fn from_str(s: &str) -> Result<PolicyName, String> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(format!(
                "policy name {s:?}: use 1 to 255 of A-Z a-z 0-9 . _ - , not starting with `.` \
                 (it becomes the directory /sys/kernel/security/ipe/policies/<name>)"
            ));
        }
        Ok(PolicyName(s.to_owned()))
    }
}

/// One non-default rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The operation it applies to (`op=`).
    pub op: Op,
    /// All must hold for the rule to match (none: it always matches).
    pub properties: Vec<Property>,
    /// What happens when it matches.
    pub action: Action,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op={}", self.op)?;
        for p in &self.properties {
            write!(f, " {p}")?;
        }
        write!(f, " action={}", self.action)
    }
}

/// A parsed IPE policy. Rules of one operation keep their order (the kernel
/// evaluates them top to bottom, the first match decides); rules of
/// different operations are independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `policy_name=` of the header.
    pub name: PolicyName,
    /// `policy_version=` of the header.
    pub version: Version,
    /// `DEFAULT action=...`.
    pub global_default: Option<Action>,
    /// `DEFAULT op=X action=...`, indexed like [`Op::ALL`].
    pub op_defaults: [Option<Action>; 7],
    /// The rules, in text order.
    pub rules: Vec<Rule>,
    /// Comment lines written before the header by [`Policy::to_text`].
    pub comments: Vec<String>,
}

/// Why a policy text is not one the kernel accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A line the kernel's parser refuses (`security/ipe/policy_parser.c`).
    #[error("IPE policy line {line}: {reason}")]
    Line {
        /// The line number, from 1.
        line: usize,
        /// Why it is refused.
        reason: String,
    },
    /// A problem with the text as a whole (empty, too large, not UTF-8, no
    /// header line).
    #[error("IPE policy: {0}")]
    Policy(String),
}

impl Policy {
    /// The action that applies to `op` when no rule matches.
    pub fn default_for(&self, op: Op) -> Option<Action> {
        self.op_defaults[op.index()].or(self.global_default)
    }

    /// The rules of `op`, in evaluation order.
    pub fn rules_for(&self, op: Op) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.op == op)
    }

    /// Parses `text` with the kernel's grammar (see the module docs).
    pub fn parse(text: &[u8]) -> Result<Policy, PolicyError> {
        if text.is_empty() {
            return Err(PolicyError::Policy("empty".into()));
        }
        if let Some(at) = text.iter().position(|&b| b == 0) {
            return Err(PolicyError::Policy(format!(
                "a NUL byte at offset {at} (the kernel would ignore everything after it)"
            )));
        }
        let text = std::str::from_utf8(text).map_err(|e| {
            PolicyError::Policy(format!("not UTF-8 text (byte {})", e.valid_up_to()))
        })?;
        let mut header: Option<(PolicyName, Version)> = None;
        let mut global_default = None;
        let mut op_defaults = [None; 7];
        let mut rules = Vec::new();
        for (no, raw) in text.split(['\n', '\r']).enumerate() {
            let err = |reason: String| PolicyError::Line {
                line: no + 1,
                reason,
            };
            let line = raw.split('#').next().unwrap_or("");
            // isspace(): space, \t, \n, \v, \f, \r.
            let line = line.trim_end_matches([' ', '\t', '\x0b', '\x0c']);
            if line.is_empty() {
                continue;
            }
            let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            if header.is_none() {
                header = Some(parse_header(&tokens).map_err(err)?);
                continue;
            }
            match parse_rule(&tokens).map_err(err)? {
                Parsed::GlobalDefault(a) => {
                    if global_default.replace(a).is_some() {
                        return Err(err("a second `DEFAULT action=` line".into()));
                    }
                }
                Parsed::OpDefault(op, a) => {
                    if op_defaults[op.index()].replace(a).is_some() {
                        return Err(err(format!("a second `DEFAULT op={op}` line")));
                    }
                }
                Parsed::Rule(r) => rules.push(r),
            }
        }
        let (name, version) = header.ok_or_else(|| {
            PolicyError::Policy("no header line `policy_name=NAME policy_version=X.Y.Z`".into())
        })?;
        if global_default.is_none()
            && let Some(op) = Op::ALL
                .into_iter()
                .find(|o| op_defaults[o.index()].is_none())
        {
            return Err(PolicyError::Policy(format!(
                "no default for op={op} and no global `DEFAULT action=`: the kernel requires \
                 a default for every operation (validate_policy())"
            )));
        }
        Ok(Policy {
            name,
            version,
            global_default,
            op_defaults,
            rules,
            comments: Vec::new(),
        })
    }

    /// The policy as text: comments, header, global default, then per
    /// operation its default and its rules. [`Policy::parse`] of the text
    /// gives this policy back (without the comments).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            for l in c.lines() {
                out.push_str(&format!("# {}\n", l.replace('\r', " ")).replace("# \n", "#\n"));
            }
        }
        out.push_str(&format!(
            "policy_name={} policy_version={}\n",
            self.name, self.version
        ));
        if let Some(a) = self.global_default {
            out.push_str(&format!("DEFAULT action={a}\n"));
        }
        for op in Op::ALL {
            if let Some(a) = self.op_defaults[op.index()] {
                out.push_str(&format!("DEFAULT op={op} action={a}\n"));
            }
            for r in self.rules_for(op) {
                out.push_str(&format!("{r}\n"));
            }
        }
        out
    }
}

enum Parsed {
    GlobalDefault(Action),
    OpDefault(Op, Action),
    Rule(Rule),
}

fn parse_header(tokens: &[&str]) -> Result<(PolicyName, Version), String> {
    let expected = "the header must be exactly `policy_name=NAME policy_version=X.Y.Z`";
    let [name, version] = tokens else {
        return Err(format!("{} tokens: {expected}", tokens.len()));
    };
    let name = name
        .strip_prefix("policy_name=")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("first token {name:?}: {expected}"))?;
    let version = version
        .strip_prefix("policy_version=")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("second token {version:?}: {expected}"))?;
    Ok((name.parse()?, version.parse()?))
}

fn parse_action(t: &str) -> Option<Action> {
    match t {
        "action=ALLOW" => Some(Action::Allow),
        "action=DENY" => Some(Action::Deny),
        _ => None,
    }
}

/// `parse_rule()`: every token but the last is `DEFAULT` (first only), the
/// op, or a property; the last is the action.
fn parse_rule(tokens: &[&str]) -> Result<Parsed, String> {
    let (last, rest) = tokens
        .split_last()
        .ok_or_else(|| "an empty rule".to_owned())?;
    let action = parse_action(last)
        .ok_or_else(|| format!("a rule must end with action=ALLOW or action=DENY, not {last:?}"))?;
    let (is_default, rest) = match rest.split_first() {
        Some((&"DEFAULT", r)) => (true, r),
        _ => (false, rest),
    };
    let (op, props) = match rest.split_first() {
        Some((t, props)) => {
            let op = t
                .strip_prefix("op=")
                .and_then(Op::from_keyword)
                .ok_or_else(|| {
                    format!(
                        "{t:?} is not an operation (op=EXECUTE, FIRMWARE, KMODULE, KEXEC_IMAGE, \
                         KEXEC_INITRAMFS, POLICY or X509_CERT); a rule starts with op="
                    )
                })?;
            (Some(op), props)
        }
        None => (None, &[][..]),
    };
    let properties = props
        .iter()
        .map(|t| Property::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    match (is_default, op) {
        (true, _) if !properties.is_empty() => Err("a DEFAULT line takes no properties".into()),
        (true, None) => Ok(Parsed::GlobalDefault(action)),
        (true, Some(op)) => Ok(Parsed::OpDefault(op, action)),
        (false, Some(op)) => Ok(Parsed::Rule(Rule {
            op,
            properties,
            action,
        })),
        (false, None) => Err("a rule needs op=<OPERATION> before its action".into()),
    }
}
