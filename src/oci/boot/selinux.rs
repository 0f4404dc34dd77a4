//! SELinux labels from an image's own policy, as composefs-rs gives them to
//! the bootable EROFS (composefs-boot 0.9.4, `src/selabel.rs`).
//!
//! The policy is the image's `file_contexts(5)` files, read as
//! composefs-boot reads them (which is a subset of libselinux's grammar):
//!
//! - `/etc/selinux/config`: the first line of the form `KEY=VALUE` whose
//!   trimmed key is `SELINUXTYPE` (any case) names the policy; its trimmed
//!   value is a path below `/etc/selinux` (`SELINUX=` is not consulted:
//!   a disabled policy still labels). No such line: no policy.
//! - `/etc/selinux/<type>/contexts/files/file_contexts` (mandatory), then
//!   `.local` and `.homedirs` (optional): one rule per line, whitespace
//!   separated, `REGEX [-TYPE] CONTEXT`, where TYPE is one of `b c d p l
//!   s -` (block, char, directory, fifo, symlink, socket, regular file).
//!   Blank lines and lines whose first field starts with `#` are skipped;
//!   anything else (a missing context, an unknown type, a fourth field) is
//!   an error. A rule becomes the regex `^(REGEX)T$` where T is the type
//!   letter, or `.` (any type) without one.
//! - `file_contexts.subs` then `.subs_dist` (optional): `ALIAS ORIGINAL`
//!   pairs (the later file wins for an alias given twice): a path equal to
//!   ALIAS is labelled, and its descendants are named, as if it were
//!   ORIGINAL.
//!
//! Files are UTF-8 text (Rust's `BufRead::lines`: a non-UTF-8 line is an
//! error), split on `\n`, fields on Unicode whitespace.
//!
//! Matching: a path's key is its bytes followed by its type letter; the
//! *last* rule (in file order: file_contexts, .local, .homedirs) whose regex
//! matches the whole key gives the context; the context `<<none>>` and no
//! match at all both mean "no label" (an existing `security.selinux` is
//! removed). The regexes run on the engines composefs-boot uses, configured
//! the same way: every rule Rust's regex syntax accepts (bytes, no Unicode,
//! NUL as the line terminator, so `.` matches every byte but NUL) in one
//! lazy DFA, the rest (lookarounds) in PCRE2.

use std::collections::HashMap;

use pcre2::bytes::Regex as Pcre;
use regex_automata::hybrid::dfa;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

/// The extended attribute that holds a file's SELinux context.
pub const XATTR_SELINUX: &[u8] = b"security.selinux";

/// The context that means "no label".
pub const NO_LABEL: &str = "<<none>>";

/// A policy file is read whole; real `file_contexts` are below 1 MiB.
pub const MAX_POLICY_FILE: u64 = 64 << 20;

/// The policy files below `contexts/files/`, in the order composefs-boot
/// reads them: the rule files, then the substitution files.
pub const RULE_FILES: [&str; 3] = [
    "file_contexts",
    "file_contexts.local",
    "file_contexts.homedirs",
];
/// See [`RULE_FILES`].
pub const SUBS_FILES: [&str; 2] = ["file_contexts.subs", "file_contexts.subs_dist"];

/// Why a policy could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A line the grammar does not allow.
    #[error(
        "SELinux policy file {file}, line {line}: {reason}; fix the image's policy (composefs-rs \
         refuses it too)"
    )]
    Syntax {
        /// The file (its name below `contexts/files/`, or `config`).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A line that is not UTF-8.
    #[error("SELinux policy file {file}, line {line}: not UTF-8 text; composefs-rs refuses it too")]
    NotUtf8 {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// A regex neither engine compiles, or a DFA over the limits.
    #[error("SELinux policy: cannot compile the file_contexts regexes: {reason}")]
    Regex {
        /// The engine's message, naming the pattern when it is one.
        reason: String,
    },
    /// The lazy DFA failed during a search (it is configured never to).
    #[error("SELinux policy: matching {path:?} failed: {reason}")]
    Search {
        /// The key (path and type letter).
        path: String,
        /// The engine's message.
        reason: String,
    },
}

/// The policy type `/etc/selinux/config` names, or `None`.
///
/// Lines are read until the first `SELINUXTYPE=` one, so (as with
/// composefs-boot) a non-UTF-8 line after it is not an error.
pub fn policy_type(config: &[u8]) -> Result<Option<String>, PolicyError> {
    for (n, line) in lines(config) {
        let line = utf8("config", n, line)?;
        if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("SELINUXTYPE")
        {
            return Ok(Some(value.trim().to_string()));
        }
    }
    Ok(None)
}

/// The lines of `text` as `BufRead::lines` yields them: split on `\n`, one
/// `\r` before it dropped, no empty last line after a final `\n`. Numbered
/// from 1.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

fn utf8<'a>(file: &str, line: usize, bytes: &'a [u8]) -> Result<&'a str, PolicyError> {
    std::str::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
        file: file.to_string(),
        line,
    })
}

/// One `file_contexts` rule: its anchored regex and its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `^(REGEX)T$`.
    pub regex: String,
    /// The context, possibly [`NO_LABEL`].
    pub context: String,
}

/// Parses one rule file (`file_contexts`, `.local`, `.homedirs`), appending
/// its rules to `rules` in file order.
pub fn parse_rules(file: &str, text: &[u8], rules: &mut Vec<Rule>) -> Result<(), PolicyError> {
    let syntax = |line: usize, reason: String| PolicyError::Syntax {
        file: file.to_string(),
        line,
        reason,
    };
    for (n, line) in lines(text) {
        let line = utf8(file, n, line)?;
        let mut fields = line.split_whitespace();
        let regex = match fields.next() {
            None => continue,
            Some(f) if f.starts_with('#') => continue,
            Some(f) => f,
        };
        let Some(next) = fields.next() else {
            return Err(syntax(n, format!("the regex {regex:?} has no context")));
        };
        let rule = match next.strip_prefix('-') {
            Some(kind) => {
                if !["b", "c", "d", "p", "l", "s", "-"].contains(&kind) {
                    return Err(syntax(
                        n,
                        format!(
                            "unknown file type -{kind} (one of -b -c -d -p -l -s -- is allowed)"
                        ),
                    ));
                }
                let Some(context) = fields.next() else {
                    return Err(syntax(n, format!("the rule for {regex:?} has no context")));
                };
                Rule {
                    regex: format!("^({regex}){kind}$"),
                    context: context.to_string(),
                }
            }
            None => Rule {
                regex: format!("^({regex}).$"),
                context: next.to_string(),
            },
        };
        if let Some(extra) = fields.next() {
            return Err(syntax(
                n,
                format!("unexpected field {extra:?} after the context"),
            ));
        }
        rules.push(rule);
    }
    Ok(())
}

/// Parses one substitution file into `aliases` (alias -> original).
pub fn parse_subs(
    file: &str,
    text: &[u8],
    aliases: &mut HashMap<Vec<u8>, Vec<u8>>,
) -> Result<(), PolicyError> {
    for (n, line) in lines(text) {
        let line = utf8(file, n, line)?;
        let mut fields = line.split_whitespace();
        let alias = match fields.next() {
            None => continue,
            Some(f) if f.starts_with('#') => continue,
            Some(f) => f,
        };
        let Some(original) = fields.next() else {
            return Err(PolicyError::Syntax {
                file: file.to_string(),
                line: n,
                reason: format!("the alias {alias:?} names no original path"),
            });
        };
        if let Some(extra) = fields.next() {
            return Err(PolicyError::Syntax {
                file: file.to_string(),
                line: n,
                reason: format!("unexpected field {extra:?} after the original path"),
            });
        }
        aliases.insert(alias.as_bytes().to_vec(), original.as_bytes().to_vec());
    }
    Ok(())
}

/// The policy files' contents, by name below `contexts/files/` (missing
/// optional files absent).
#[derive(Debug, Default, Clone)]
pub struct PolicyFiles {
    /// `(name, content)`, any order.
    pub files: Vec<(&'static str, Vec<u8>)>,
}

impl PolicyFiles {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.as_slice())
    }
}

/// A compiled policy, ready to label paths.
#[derive(Debug)]
pub struct Policy {
    aliases: HashMap<Vec<u8>, Vec<u8>>,
    matcher: Matcher,
    /// By priority: index 0 is the last rule of the files.
    contexts: Vec<String>,
}

impl Policy {
    /// Parses and compiles the policy; `file_contexts` must be present.
    pub fn build(files: &PolicyFiles) -> Result<Policy, PolicyError> {
        let mut rules = Vec::new();
        for name in RULE_FILES {
            match files.get(name) {
                Some(text) => parse_rules(name, text, &mut rules)?,
                None if name == RULE_FILES[0] => {
                    return Err(PolicyError::Syntax {
                        file: name.to_string(),
                        line: 0,
                        reason: "the policy has no file_contexts file (it is mandatory)".into(),
                    });
                }
                None => {}
            }
        }
        let mut aliases = HashMap::new();
        for name in SUBS_FILES {
            if let Some(text) = files.get(name) {
                parse_subs(name, text, &mut aliases)?;
            }
        }
        Policy::from_rules(rules, aliases)
    }

    /// Compiles `rules` (in file order) and `aliases`.
    pub fn from_rules(
        mut rules: Vec<Rule>,
        aliases: HashMap<Vec<u8>, Vec<u8>>,
    ) -> Result<Policy, PolicyError> {
        // The last matching rule wins: search them in reverse, first match.
        rules.reverse();
        let regexes: Vec<&str> = rules.iter().map(|r| r.regex.as_str()).collect();
        let matcher = Matcher::build(&regexes)?;
        Ok(Policy {
            aliases,
            matcher,
            contexts: rules.into_iter().map(|r| r.context).collect(),
        })
    }

    /// What a path equal to `path` is labelled as (and its descendants
    /// named from), if `.subs`/`.subs_dist` alias it.
    pub fn alias(&self, path: &[u8]) -> Option<&[u8]> {
        self.aliases.get(path).map(Vec::as_slice)
    }

    /// The label of `path` with type letter `kind` (`d`, `-`, `l`, ...), or
    /// `None` for no label.
    pub fn label(&mut self, path: &[u8], kind: u8) -> Result<Option<&str>, PolicyError> {
        let mut key = Vec::with_capacity(path.len() + 1);
        key.extend_from_slice(path);
        key.push(kind);
        Ok(self
            .matcher
            .lookup(&key)?
            .map(|i| self.contexts[i].as_str())
            .filter(|c| *c != NO_LABEL))
    }
}

/// The lazy DFA over the rules Rust's regex syntax parses.
struct DfaPart {
    dfa: dfa::DFA,
    cache: dfa::Cache,
    /// DFA pattern id -> rule index (by priority).
    rules: Vec<usize>,
}

/// All rules, by priority: one DFA plus PCRE2 for the rest.
struct Matcher {
    dfa: Option<DfaPart>,
    /// `(rule index, regex)`, ascending rule index.
    pcre: Vec<(usize, Pcre)>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("dfa_rules", &self.dfa.as_ref().map_or(0, |d| d.rules.len()))
            .field("pcre_rules", &self.pcre.len())
            .finish()
    }
}

/// composefs-boot's `dfa_syntax_config`: bytes, no Unicode, NUL as the
/// line terminator.
fn syntax_config() -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .line_terminator(0)
}

/// composefs-boot's `make_dfa_builder`: a 10 MB cache that is never given
/// up on.
fn dfa_builder() -> dfa::Builder {
    let mut b = dfa::Builder::new();
    b.syntax(syntax_config());
    b.configure(
        dfa::Config::new()
            .cache_capacity(10_000_000)
            .skip_cache_capacity_check(true),
    );
    b
}

impl Matcher {
    /// One DFA for all rules if that builds; otherwise the rules that
    /// parse go to one DFA and the others to PCRE2 (composefs-boot's
    /// `Matcher::build`, `build_partitioned`).
    fn build(regexes: &[&str]) -> Result<Matcher, PolicyError> {
        let builder = dfa_builder();
        if let Ok(dfa) = builder.build_many(regexes) {
            return Ok(Matcher::with_dfa(dfa, (0..regexes.len()).collect()));
        }
        let config = syntax_config();
        let (mut in_dfa, mut patterns, mut pcre) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &p) in regexes.iter().enumerate() {
            if syntax::parse_with(p, &config).is_ok() {
                in_dfa.push(i);
                patterns.push(p);
            } else {
                let re = Pcre::new(p).map_err(|e| PolicyError::Regex {
                    reason: format!("{p:?}: {e}"),
                })?;
                pcre.push((i, re));
            }
        }
        let mut m = if patterns.is_empty() {
            Matcher {
                dfa: None,
                pcre: Vec::new(),
            }
        } else {
            let dfa = builder
                .build_many(&patterns)
                .map_err(|e| PolicyError::Regex {
                    reason: e.to_string(),
                })?;
            Matcher::with_dfa(dfa, in_dfa)
        };
        m.pcre = pcre;
        Ok(m)
    }

    fn with_dfa(dfa: dfa::DFA, rules: Vec<usize>) -> Matcher {
        let cache = dfa.create_cache();
        Matcher {
            dfa: Some(DfaPart { dfa, cache, rules }),
            pcre: Vec::new(),
        }
    }

    /// The highest-priority (lowest index) rule matching `key`.
    fn lookup(&mut self, key: &[u8]) -> Result<Option<usize>, PolicyError> {
        let from_dfa = match self.dfa.as_mut() {
            None => None,
            Some(d) => {
                let input = Input::new(key).anchored(Anchored::Yes);
                d.dfa
                    .try_search_fwd(&mut d.cache, &input)
                    .map_err(|e| PolicyError::Search {
                        path: String::from_utf8_lossy(key).into_owned(),
                        reason: e.to_string(),
                    })?
                    .map(|m| d.rules[m.pattern().as_usize()])
            }
        };
        for (i, re) in &self.pcre {
            if from_dfa.is_some_and(|d| *i >= d) {
                break;
            }
            // composefs-boot: a PCRE2 match error (e.g. its match limit)
            // counts as no match.
            if re.is_match(key).unwrap_or(false) {
                return Ok(Some(*i));
            }
        }
        Ok(from_dfa)
    }
}
