//! `scripts/debian-mirror`, the one place that knows which Debian mirror
//! this machine uses (`scripts/debian-fetch`, `scripts/install-deps` and
//! `tests/mkosi_image.rs` ask it), fed sample apt configurations.
//!
//! Each case is a private apt configuration (`APT_CONFIG` naming its own
//! `sources.list`, `sources.list.d/`, `apt.conf.d/`), read by the real
//! `apt-get indextargets`: the one-line and deb822 formats, `Enabled: no`,
//! options, comments and other vendors' repositories are apt's own parse.
//! The sample mirrors are local (`file:`, `mirror+file:`) paths: apt treats
//! them like any other URI, and no mirror host name enters the repository.

use std::path::Path;
use std::process::{Command, Output};

/// A private apt configuration in a temporary directory.
struct AptConfig {
    dir: tempfile::TempDir,
}

impl AptConfig {
    /// `sources_list` becomes `/etc/apt/sources.list`, each `(name, text)`
    /// of `parts` a file in `sources.list.d/`, `conf` an `apt.conf.d/` file.
    fn new(sources_list: &str, parts: &[(&str, &str)], conf: &str) -> AptConfig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["sources.list.d", "apt.conf.d", "lists/partial"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("sources.list"), sources_list).unwrap();
        for (name, text) in parts {
            std::fs::write(d.join("sources.list.d").join(name), text).unwrap();
        }
        std::fs::write(d.join("apt.conf.d/50sample"), conf).unwrap();
        // Nothing of the host's apt configuration leaks in: the parts
        // directory and the main file are ours too.
        let main = format!(
            "Dir::Etc::SourceList \"{d}/sources.list\";\n\
             Dir::Etc::SourceParts \"{d}/sources.list.d\";\n\
             Dir::Etc::Parts \"{d}/apt.conf.d\";\n\
             Dir::Etc::Main \"{d}/no-such-apt.conf\";\n\
             Dir::State::Lists \"{d}/lists\";\n",
            d = d.display()
        );
        std::fs::write(d.join("apt.conf"), main).unwrap();
        AptConfig { dir }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debian-mirror");
        let mut cmd = Command::new(&script);
        cmd.args(args)
            .env("APT_CONFIG", self.dir.path().join("apt.conf"))
            .env_remove("SEALROOT_DEBIAN_MIRROR")
            .env_remove("SEALROOT_DEBIAN_SECURITY_MIRROR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
    }

    /// The script's answer; it must succeed.
    fn answer(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "debian-mirror {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }
}

/// The deb822 file Debian 12's installer and cloud images write, with the
/// archive on a local mirror.
const DEB822: &str = "\
Types: deb
URIs: file:/srv/mirror/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: file:/srv/mirror/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

#[test]
fn deb822_sources_give_the_archive_and_the_security_archive() {
    let apt = AptConfig::new("", &[("debian.sources", DEB822)], "");
    assert_eq!(apt.answer(&[], &[]), "file:/srv/mirror/debian");
    assert_eq!(
        apt.answer(&["--security"], &[]),
        "file:/srv/mirror/debian-security"
    );
}

#[test]
fn one_line_sources_with_options_and_comments() {
    let apt = AptConfig::new(
        "# deb file:/old/mirror/debian bookworm main\n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] file:/var/local/debian bookworm main contrib\n\
         deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] file:/var/local/debian bookworm main\n\
         deb file:/var/local/debian-security bookworm-security main\n",
        &[],
        "",
    );
    assert_eq!(apt.answer(&[], &[]), "file:/var/local/debian");
    assert_eq!(
        apt.answer(&["--security"], &[]),
        "file:/var/local/debian-security"
    );
}

#[test]
fn other_vendors_repositories_and_disabled_entries_are_passed_over() {
    // A vendor's repository listed first (sources.list is read before the
    // parts), a disabled Debian entry, then the one that counts; a
    // `mirror+file:` list (apt-transport-mirror) is a URI like any other.
    let apt = AptConfig::new(
        "deb file:/opt/vendor/apt cloud-sdk-bookworm main\n",
        &[
            (
                "10-disabled.sources",
                "Types: deb\nURIs: file:/mnt/stale/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
            ),
            (
                "20-debian.sources",
                "Types: deb\nURIs: mirror+file:/etc/apt/mirrors/debian.list\nSuites: trixie trixie-updates\nComponents: main\n",
            ),
            (
                "30-nodesource.sources",
                "Types: deb\nURIs: file:/opt/node\nSuites: nodistro\nComponents: main\n",
            ),
        ],
        "",
    );
    assert_eq!(
        apt.answer(&[], &[]),
        "mirror+file:/etc/apt/mirrors/debian.list"
    );
    // No security entry configured: nothing, and success.
    assert_eq!(apt.answer(&["--security"], &[]), "");
}

#[test]
fn backports_only_sources_still_name_the_mirror() {
    let apt = AptConfig::new(
        "",
        &[(
            "backports.sources",
            "Types: deb\nURIs: file:/srv/debian\nSuites: bookworm-backports\nComponents: main\n",
        )],
        "",
    );
    assert_eq!(apt.answer(&[], &[]), "file:/srv/debian");
}

#[test]
fn the_environment_overrides_apt() {
    let apt = AptConfig::new("", &[("debian.sources", DEB822)], "");
    let env = [
        ("SEALROOT_DEBIAN_MIRROR", "file:/elsewhere/debian/"),
        (
            "SEALROOT_DEBIAN_SECURITY_MIRROR",
            "file:/elsewhere/security",
        ),
    ];
    assert_eq!(apt.answer(&[], &env), "file:/elsewhere/debian");
    assert_eq!(
        apt.answer(&["--security"], &env),
        "file:/elsewhere/security"
    );
}

#[test]
fn no_debian_archive_is_an_error_that_names_the_override() {
    let apt = AptConfig::new("deb file:/opt/vendor/apt nodistro main\n", &[], "");
    let out = apt.run(&[], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Debian archive") && stderr.contains("SEALROOT_DEBIAN_MIRROR"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_proxy_comes_from_apt_conf() {
    let apt = AptConfig::new("", &[("debian.sources", DEB822)], "");
    assert_eq!(apt.answer(&["--proxy"], &[]), "");
    let apt = AptConfig::new(
        "",
        &[("debian.sources", DEB822)],
        "Acquire::http::Proxy \"socks5h://proxy.invalid:1080\";\n",
    );
    assert_eq!(
        apt.answer(&["--proxy"], &[]),
        "socks5h://proxy.invalid:1080"
    );
    let apt = AptConfig::new(
        "",
        &[("debian.sources", DEB822)],
        "Acquire::http::Proxy \"DIRECT\";\n",
    );
    assert_eq!(apt.answer(&["--proxy"], &[]), "");
}
