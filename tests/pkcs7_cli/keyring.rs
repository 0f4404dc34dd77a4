//! Keyring add/list/seal on a private session keyring of the host kernel
//! (RSA only: ECDSA needs the kernel's ecdsa module, absent on some hosts).

use super::env::{Env, SEALROOT};
use super::tools::keyctl;

#[test]
fn keyring_add_list_seal_on_a_private_keyring() {
    let env = Env::new();
    env.sealroot_ok(&["keygen", "--out-dir", "a", "--type", "rsa2048"]);
    env.sealroot_ok(&[
        "keygen",
        "--out-dir",
        "b",
        "--type",
        "rsa2048",
        "--ca-subject",
        "CN=other CA",
    ]);
    // A fresh session keyring per shell: nothing outside this test sees it.
    let script = format!(
        r#"set -u
S={SEALROOT}
K={keyctl}
R=$($K newring ca-sealed @s) || exit 99
$S keyring --keyring-id=$R seal --ca=a/ca.crt.pem || exit 10
$S keyring --keyring-id=$R add a/signer.crt.pem || exit 11
$S keyring --keyring-id=$R add b/signer.crt.pem 2>err.b; echo "b=$?"
$S keyring --keyring-id=$R list --json --cert a > list.json || exit 12
$S keyring --keyring-id=$R seal 2>err.twice; echo "twice=$?"
R2=$($K newring reject-all @s) || exit 99
$S keyring --keyring-id=$R2 add a || exit 13
$S keyring --keyring-id=$R2 seal || exit 14
$S keyring --keyring-id=$R2 add b/ca.crt.pem 2>err.sealed; echo "sealed=$?"
$S keyring --keyring-id=$R2 seal --ca=a/signer.crt.pem 2>err.notca; echo "notca=$?"
"#,
        keyctl = keyctl().exe().display()
    );
    let mut cmd = keyctl().command();
    cmd.args(["session", "-", "sh", "-c", &script]);
    let out = env.ok(cmd);
    assert!(out.contains("b=1\n"), "{out}");
    let err = std::fs::read_to_string(env.path("err.b")).unwrap();
    assert!(
        err.contains("ENOKEY: the keyring is sealed to a CA"),
        "{err}"
    );
    assert!(out.contains("twice=1\n"), "{out}");
    let err = std::fs::read_to_string(env.path("err.twice")).unwrap();
    assert!(
        err.contains("EEXIST: the keyring is already sealed"),
        "{err}"
    );
    assert!(out.contains("sealed=1\n"), "{out}");
    let err = std::fs::read_to_string(env.path("err.sealed")).unwrap();
    assert!(err.contains("EPERM: the .fs-verity keyring is sealed (restricted); certificates must be added before sealing"), "{err}");
    assert!(out.contains("notca=3\n"), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("list.json")).unwrap()).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let subjects: Vec<_> = list
        .iter()
        .map(|e| e["cert"]["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"CN=sealroot test CA") && subjects.contains(&"CN=sealroot signer"));
    assert!(list.iter().all(|e| e["key_type"] == "asymmetric"));
}
