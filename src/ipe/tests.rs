//! The policy model against the kernel's grammar (Linux 6.12
//! `security/ipe/policy_parser.c`, read for each case below). The kernel
//! itself judges the generated policy in `tests/vm_ipe.rs`.

use proptest::prelude::*;

use super::generate::{SealedPolicy, Trust};
use super::policy::*;

fn parse(s: &str) -> Result<Policy, PolicyError> {
    Policy::parse(s.as_bytes())
}

const HEADER: &str = "policy_name=p policy_version=1.2.3\n";

#[test]
fn generated_policy_parses_back() {
    let sealed = SealedPolicy::default();
    let policy = sealed.policy();
    let text = policy.to_text();
    let back = parse(&text).unwrap();
    assert_eq!(back.name.as_str(), "sealroot");
    assert_eq!(back.version.to_string(), "1.0.0");
    assert_eq!(back.rules, policy.rules);
    assert_eq!(back.op_defaults, policy.op_defaults);
    assert_eq!(back.global_default, Some(Action::Deny));
    // EXECUTE: deny unless from the initramfs or signed.
    assert_eq!(back.default_for(Op::Execute), Some(Action::Deny));
    let exec: Vec<String> = back.rules_for(Op::Execute).map(|r| r.to_string()).collect();
    assert_eq!(
        exec,
        [
            "op=EXECUTE boot_verified=TRUE action=ALLOW",
            "op=EXECUTE fsverity_signature=TRUE action=ALLOW"
        ]
    );
    // The defaults of docs/ipe.md: kexec denied outright.
    assert_eq!(back.rules_for(Op::KexecImage).count(), 0);
    assert_eq!(back.default_for(Op::KexecImage), Some(Action::Deny));
    assert_eq!(back.rules_for(Op::KernelModule).count(), 2);
    // Nothing but ALLOW rules for signed files and DENY defaults.
    assert!(back.rules.iter().all(|r| r.action == Action::Allow));
    assert!(text.starts_with("# IPE policy for a sealroot sealed system"));
}

#[test]
fn trust_choices() {
    let p = SealedPolicy {
        kernel_modules: Trust::Any,
        kexec: Trust::Signed,
        firmware: Trust::Deny,
        ..Default::default()
    }
    .policy();
    let p = parse(&p.to_text()).unwrap();
    assert_eq!(p.default_for(Op::KernelModule), Some(Action::Allow));
    assert_eq!(p.rules_for(Op::KernelModule).count(), 0);
    assert_eq!(p.rules_for(Op::KexecInitramfs).count(), 2);
    assert_eq!(p.default_for(Op::Firmware), Some(Action::Deny));
    assert_eq!(p.rules_for(Op::Firmware).count(), 0);
}

#[test]
fn minimal_policies() {
    // validate_policy(): a global default suffices ...
    let p = parse(&format!("{HEADER}DEFAULT action=ALLOW")).unwrap();
    assert_eq!(p.default_for(Op::X509Cert), Some(Action::Allow));
    // ... or one default per operation.
    let mut text = HEADER.to_owned();
    for op in Op::ALL {
        text.push_str(&format!("DEFAULT op={op} action=DENY\n"));
    }
    parse(&text).unwrap();
    // One missing, no global default: EBADMSG.
    let missing = text.replace("DEFAULT op=POLICY action=DENY\n", "");
    let e = parse(&missing).unwrap_err().to_string();
    assert!(e.contains("no default for op=POLICY"), "{e}");
    // The header alone is not a policy; neither is nothing.
    assert!(parse(HEADER).is_err());
    assert!(parse("").is_err());
    assert!(
        parse("# only a comment\n")
            .unwrap_err()
            .to_string()
            .contains("no header")
    );
}

#[test]
fn lexical_rules() {
    // Comments anywhere, \r and \n both end lines, tabs and repeated
    // spaces separate tokens, leading blanks are skipped.
    let p = parse(
        "# c\r\n\tpolicy_name=x  policy_version=+0.+10.65535 # trailing\r\
         DEFAULT\taction=DENY\n   op=EXECUTE   fsverity_signature=TRUE action=ALLOW#x\n",
    )
    .unwrap();
    assert_eq!(p.version.to_string(), "0.10.65535");
    assert_eq!(p.rules.len(), 1);
    // '#' ends the line even inside a token: the action is cut off.
    assert!(
        parse(&format!(
            "{HEADER}DEFAULT action=DENY\nop=EXECUTE action=AL#LOW\n"
        ))
        .is_err()
    );
    // Only space and tab separate tokens (\v is part of the token).
    assert!(parse(&format!("{HEADER}DEFAULT\x0baction=DENY\n")).is_err());
    // A NUL would silently end the kernel's copy: refused here.
    assert!(
        parse(&format!(
            "{HEADER}DEFAULT action=DENY\n\0op=EXECUTE action=ALLOW\n"
        ))
        .is_err()
    );
}

#[test]
fn header_rules() {
    let body = "DEFAULT action=DENY\n";
    let ok = |h: &str| parse(&format!("{h}\n{body}")).is_ok();
    assert!(ok("policy_name=a.b-c_D9 policy_version=0.0.0"));
    // Order, count and spelling are fixed (parse_header()).
    assert!(!ok("policy_version=1.0.0 policy_name=a"));
    assert!(!ok("policy_name=a"));
    assert!(!ok("policy_name=a policy_version=1.0.0 extra=1"));
    assert!(!ok("policy_name= policy_version=1.0.0"));
    assert!(!ok("Policy_name=a policy_version=1.0.0"));
    // parse_version(): three kstrtou16 numbers.
    for bad in [
        "1.0",
        "1.0.0.0",
        "1..0",
        "1.0.x",
        "65536.0.0",
        "1.0.",
        "-1.0.0",
        "0x1.0.0",
    ] {
        assert!(!ok(&format!("policy_name=a policy_version={bad}")), "{bad}");
    }
    // Names become securityfs directories: sealroot refuses `/` and dots.
    for bad in ["a/b", "..", ".hidden"] {
        assert!(
            !ok(&format!("policy_name={bad} policy_version=1.0.0")),
            "{bad}"
        );
    }
}

#[test]
fn rule_rules() {
    let err = |rules: &str| {
        parse(&format!("{HEADER}DEFAULT action=DENY\n{rules}"))
            .unwrap_err()
            .to_string()
    };
    // DEFAULT takes no properties; each default at most once.
    assert!(err("DEFAULT op=EXECUTE boot_verified=TRUE action=ALLOW\n").contains("no properties"));
    assert!(err("DEFAULT action=ALLOW\n").contains("second"));
    assert!(
        err("DEFAULT op=KMODULE action=ALLOW\nDEFAULT op=KMODULE action=DENY\n").contains("second")
    );
    // A rule starts with op= and ends with action=.
    assert!(err("boot_verified=TRUE op=EXECUTE action=ALLOW\n").contains("not an operation"));
    assert!(err("op=EXECUTE boot_verified=TRUE\n").contains("must end with action"));
    assert!(err("action=ALLOW\n").contains("needs op="));
    assert!(err("op=EXECUTE\n").contains("must end with action"));
    assert!(err("DEFAULT DEFAULT action=DENY\n").contains("not an operation"));
    // 6.12's operations and properties only, spelled exactly.
    assert!(err("op=KERNEL_MODULE action=ALLOW\n").contains("not an operation"));
    assert!(err("op=EXECUTE fsverity_signature=true action=ALLOW\n").contains("TRUE or FALSE"));
    assert!(err("op=EXECUTE ipe_lsm=TRUE action=ALLOW\n").contains("unknown property"));
    assert!(err("op=EXECUTE action=allow\n").contains("must end with action"));
    assert!(err("op=EXECUTE fsverity_digest=sha256:abc action=ALLOW\n").contains("even"));
    assert!(err("op=EXECUTE fsverity_digest=abcd action=ALLOW\n").contains("<algorithm>:"));
    // A rule without properties always matches; digests keep their text.
    let p = parse(&format!(
        "{HEADER}DEFAULT action=DENY\nop=KMODULE action=ALLOW\n\
         op=EXECUTE fsverity_digest=sha256:00FF dmverity_signature=FALSE action=DENY\n"
    ))
    .unwrap();
    assert_eq!(p.rules[0].properties, vec![]);
    assert_eq!(
        p.rules[1].to_string(),
        "op=EXECUTE fsverity_digest=sha256:00FF dmverity_signature=FALSE action=DENY"
    );
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop::sample::select(Op::ALL.to_vec())
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![Action::Allow, Action::Deny])
}

fn arb_property() -> impl Strategy<Value = Property> {
    let digest = ("(sha256|sha512|md5)", "([0-9a-f]{2}){1,8}")
        .prop_map(|(algorithm, hex)| DigestValue { algorithm, hex });
    prop_oneof![
        any::<bool>().prop_map(Property::BootVerified),
        any::<bool>().prop_map(Property::FsVeritySignature),
        any::<bool>().prop_map(Property::DmVeritySignature),
        digest.clone().prop_map(Property::FsVerityDigest),
        digest.prop_map(Property::DmVerityRoothash),
    ]
}

proptest! {
    /// Any policy the model can express prints to text that parses back
    /// to it (per-operation rule order preserved).
    #[test]
    fn text_round_trip(
        name in "[a-z][a-z0-9._-]{0,20}",
        version in (any::<u16>(), any::<u16>(), any::<u16>()),
        global in prop::option::of(arb_action()),
        defaults in prop::array::uniform7(prop::option::of(arb_action())),
        rules in prop::collection::vec(
            (arb_op(), prop::collection::vec(arb_property(), 0..4), arb_action()), 0..12),
    ) {
        let mut defaults = defaults;
        if global.is_none() {
            for d in &mut defaults { d.get_or_insert(Action::Deny); }
        }
        let policy = Policy {
            name: name.parse().unwrap(),
            version: Version { major: version.0, minor: version.1, revision: version.2 },
            global_default: global,
            op_defaults: defaults,
            rules: rules.into_iter().map(|(op, properties, action)| Rule { op, properties, action }).collect(),
            comments: vec!["round trip".into()],
        };
        let back = Policy::parse(policy.to_text().as_bytes()).unwrap();
        prop_assert_eq!(&back.name, &policy.name);
        prop_assert_eq!(back.version, policy.version);
        prop_assert_eq!(back.global_default, policy.global_default);
        prop_assert_eq!(back.op_defaults, policy.op_defaults);
        for op in Op::ALL {
            let a: Vec<&Rule> = back.rules_for(op).collect();
            let b: Vec<&Rule> = policy.rules_for(op).collect();
            prop_assert_eq!(a, b);
        }
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Policy::parse(&bytes);
    }
}
