//! Properties over arbitrary input: reading a spec, filling in templates, judging and
//! grading never panic, whatever the teacher wrote or the student's machine printed.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::evidence::{sha256_hex, Blob, Evidence, StudentEvidence, StudentInfo, Target};
use crate::spec::Spec;
use crate::template::{Template, Vars};

const HEADERS: &[&str] = &["[exam]", "[[probe]]", "[[check]]", ""];
const KEYS: &[&str] = &[
    "id", "exec", "file", "agent", "ping", "tcp", "dns", "http", "from", "timeout", "probe",
    "uses", "expect", "points", "penalty", "partial", "requires", "retry", "fail", "pass", "tags",
    "mutant", "teacher", "floor", "title", "colour",
];
const VALUES: &[&str] = &[
    "\"p\"",
    "\"c\"",
    "\"q\"",
    "[\"true\"]",
    "[\"ip\", \"-j\", \"addr\"]",
    "[]",
    "\"/etc/{{file}}\"",
    "\"info\"",
    "\"10.0.0.1:22\"",
    "\"[::1]:0\"",
    "\"{{ip}}:{{port}}\"",
    "{ server = \"{{ip}}\", name = \"x.\", type = \"mx\" }",
    "\"http://{{ip}}/\"",
    "\"teacher\"",
    "\"host\"",
    "0",
    "-1",
    "3.5",
    "100",
    "true",
    "[{ exit = 0 }]",
    "[{ status = 200 }, { contains = \"{{student}}\" }]",
    "[{ json = \"$[\", exists = true }]",
    "[{ json = \"$[*].{{key}}\", includes = [\"{{vlan}}\", 1, true] }]",
    "[{ regex = \"{{pattern}}\" }]",
    "[\"c\"]",
    "[\"p\", \"c\"]",
    "{ within = 1, every = 2 }",
    "{ within = 5, every = 1 }",
    "\"{{vlan}}\"",
    "\"{{\"",
    "[{ in_subnet = \"{{net}}\", all = true }]",
    "[{ ip_eq = \"{{ip}}\" }, { set = [] }]",
    "[{ equals = 1.5 }, { lt = 2 }, { count = 3, not = true }]",
    "[{ reachable = false }]",
    "[{ sha256 = \"{{h}}\" }]",
    "[{ field = \"answers\", exists = true }]",
    "[{ field = \"lines\", equals = \"x\", all = true }]",
];
const OUTPUTS: &[&str] = &[
    "",
    "active\n",
    "[{\"ifname\":\"ens18\",\"addr_info\":[{\"local\":\"10.0.0.1\"}]}]",
    "<h1>x</h1>\n200",
    "\n000",
    "10.0.0.1\n;; comment\n",
    "{\"a\": [1, 2.5, \"3\", null, {\"b\": false}]}",
    "not json at all",
];

fn spec_text() -> impl Strategy<Value = String> {
    let line =
        (0..KEYS.len(), 0..VALUES.len()).prop_map(|(k, v)| format!("{} = {}", KEYS[k], VALUES[v]));
    let table = (0..HEADERS.len(), proptest::collection::vec(line, 0..8))
        .prop_map(|(h, lines)| format!("{}\n{}\n", HEADERS[h], lines.join("\n")));
    proptest::collection::vec(table, 0..8).prop_map(|t| t.concat())
}

const REQUESTS: &[&str] = &[
    "exec = [\"ip\", \"-j\", \"addr\"]",
    "exec = [\"systemctl\", \"is-active\", \"{{service}}\"]",
    "file = \"/etc/{{file}}\"",
    "agent = \"network\"",
    "ping = \"{{ip}}\"",
    "tcp = \"{{ip}}:{{port}}\"",
    "dns = { server = \"{{ip}}\", name = \"www.{{vlan}}.\" }",
    "http = \"http://{{ip}}/\"",
];
const EXPECTS: &[&str] = &[
    "[{ exists = true }]",
    "[{ exit = 0 }, { equals = \"active\" }]",
    "[{ json = \"$[*].addr_info[*].local\", includes = [\"{{ip}}\"] }]",
    "[{ json = \"$[*].{{key}}\", count = 1, not = true }]",
    "[{ regex = \"{{pattern}}\" }, { contains = \"{{student}}\" }]",
    "[{ in_subnet = \"{{net}}\", all = true }, { ip_eq = \"{{ip}}\" }]",
    "[{ gt = 1 }, { le = 2.5 }, { equals = true }]",
    "[{ sha256 = \"{{h}}\" }]",
    "[{ field = \"stdout\", set = [\"a\", \"{{vlan}}\"] }]",
    "[{ field = \"stderr\", equals = 3 }]",
    "[{ equals = \"[1, 2.5, \\\"3\\\", null, {\\\"b\\\": false}]\" }]",
];

/// Specs that mostly parse: probes and checks from valid pieces, a few extra lines.
fn valid_spec_text() -> impl Strategy<Value = String> {
    let probe = (
        0..REQUESTS.len(),
        prop::option::of(prop::sample::select(vec![
            "from = \"teacher\"",
            "timeout = 0.5",
            "timeout = 2",
        ])),
    );
    let check = (
        0..4usize,
        0..EXPECTS.len(),
        prop::option::of(0..4usize),
        prop::sample::subsequence(
            vec![
                "points = 2.5",
                "penalty = 1",
                "partial = true",
                "retry = { within = 5, every = 1 }",
                "fail = \"no {{vlan}}\"",
                "pass = \"ok {{student}}\"",
            ],
            0..4,
        ),
    );
    (
        prop::option::of(prop::sample::select(vec![
            "[exam]\nteacher = 100\nfloor = -2",
            "[exam]\ntimeout = 3",
        ])),
        proptest::collection::vec(probe, 1..5),
        proptest::collection::vec(check, 0..6),
    )
        .prop_map(|(exam, probes, checks)| {
            let mut s = exam.map(|e| format!("{e}\n")).unwrap_or_default();
            for (i, (r, extra)) in probes.iter().enumerate() {
                s.push_str(&format!(
                    "[[probe]]\nid = \"p{i}\"\n{}\n{}\n",
                    REQUESTS[*r],
                    extra.unwrap_or("")
                ));
            }
            for (j, (p, e, req, extra)) in checks.iter().enumerate() {
                s.push_str(&format!(
                    "[[check]]\nid = \"c{j}\"\nprobe = \"p{}\"\nexpect = {}\n",
                    p % probes.len(),
                    EXPECTS[*e]
                ));
                // An earlier check: no cycles, no unknown ids.
                if let Some(r) = req.filter(|_| j > 0) {
                    s.push_str(&format!("requires = [\"c{}\"]\n", r % j));
                }
                for x in extra {
                    s.push_str(x);
                    s.push('\n');
                }
            }
            s
        })
}

fn student(vars: BTreeMap<String, String>) -> StudentInfo {
    StudentInfo {
        key: "s01".into(),
        name: "Ada".into(),
        hostname: "s01".into(),
        vmid: 5001,
        node: "pve1".into(),
        vars,
    }
}

fn vars_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    let names = prop::sample::select(vec![
        "ip", "port", "vlan", "pattern", "net", "key", "h", "file", "service",
    ]);
    let values = prop_oneof![
        Just("10.0.0.1".to_owned()),
        Just("fd00::/64".to_owned()),
        Just("(".to_owned()),
        Just("-x".to_owned()),
        Just("65536".to_owned()),
        Just("22".to_owned()),
        Just("ifname".to_owned()),
        "\\PC{0,12}",
    ];
    proptest::collection::btree_map(names.prop_map(str::to_owned), values, 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsing_any_text_never_panics(text in "\\PC*") {
        let _ = Spec::parse(&text, "fuzz.toml");
    }

    #[test]
    fn templating_any_text_never_panics(raw in "[{}a-z .]{0,40}|\\PC*", vars in vars_strategy()) {
        if let Ok(t) = Template::parse(&raw) {
            let s = student(vars);
            let _ = t.render(&Vars::of(&s));
            let _ = t.literal();
        }
    }

    #[test]
    fn parsing_planning_linting_and_grading_spec_like_text_never_panics(
        text in prop_oneof![spec_text(), valid_spec_text()],
        vars in vars_strategy(),
        outs in proptest::collection::vec((0..OUTPUTS.len(), -1i64..3, any::<bool>()), 8),
    ) {
        let Ok(spec) = Spec::parse(&text, "fuzz.toml") else { return Ok(()) };
        let info = student(vars);
        let _ = spec.sha256();
        let _ = spec.lint(std::slice::from_ref(&info));
        let _ = spec.mutants();
        let mut probes = BTreeMap::new();
        for (i, (id, planned)) in spec.plan_each(&info).into_iter().enumerate() {
            let Ok(p) = planned else { continue };
            let (o, exit, truncated) = outs[i % outs.len()];
            let out = OUTPUTS[o];
            let ev = Evidence {
                probe: id.clone(),
                student: "s01".into(),
                source: p.source,
                request: p.request,
                target: Target { vmid: Some(5001), node: None, name: "s01".into() },
                start: String::new(),
                end: String::new(),
                attempts: 1,
                exit: Some(exit),
                signal: None,
                stdout: Blob::from(out),
                stderr: Blob::default(),
                truncated,
                sha256: sha256_hex(out.as_bytes()),
                error: None,
            };
            let _ = spec.settled(&info, &ev);
            probes.insert(id, ev);
        }
        let class = [StudentEvidence { info, probes, problems: Vec::new() }];
        let a = crate::grade(&spec, "lab", "x", &class);
        let b = crate::grade(&spec, "lab", "x", &class);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.students[0].checks.len(), spec.checks.len());
        for c in &a.students[0].checks {
            prop_assert!(c.points.is_finite());
            if c.outcome != crate::Outcome::Pass && c.outcome != crate::Outcome::Fail {
                prop_assert_eq!(c.points, 0.0);
            }
        }
    }
}
