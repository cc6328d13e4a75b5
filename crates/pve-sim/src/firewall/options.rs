//! `[OPTIONS]` at datacenter, node and guest level: GET/PUT `…/firewall/options`
//! (`API2/Firewall/{Cluster,Host,VM}.pm`). GET returns only the keys set explicitly,
//! plus `digest`; PUT sets keys, `delete` removes them, `digest` guards concurrent edits.
//! A cluster `enable` > 1 is PVE's anti-lockout step: stored as the Unix time of the
//! write, read back (GET and the oracle) as 0 once older than 60 s (scaled by the
//! simulator's time scale, [`Firewall::set_anti_lockout_window`]) unless `enable: 1`
//! confirmed it; the digest stays that of the file as written.

use http::Method;
use serde_json::{json, Map, Value};

use super::{assert_digest, check_allowed, digest, no_params, Firewall, FwFile, Scope};
use crate::error::{ApiError, ApiResult, Params};

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `0`/`1`, stored as an integer (the parser reads `enable: 1` as a number).
    Bool,
    /// An integer within bounds.
    Int { min: i64, max: Option<i64> },
    /// One of a fixed list of strings.
    Enum(&'static [&'static str]),
    /// `nf_conntrack_helpers`: a comma list of known helpers.
    Helpers,
    /// Free text (`log_ratelimit`).
    Text,
}

const POLICIES: &[&str] = &["ACCEPT", "REJECT", "DROP"];
const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog",
];
const HELPERS: &[&str] = &[
    "amanda",
    "ftp",
    "irc",
    "netbios-ns",
    "pptp",
    "sane",
    "sip",
    "snmp",
    "tftp",
];

/// `$cluster_option_properties`.
const CLUSTER: &[(&str, Kind)] = &[
    ("ebtables", Kind::Bool),
    ("enable", Kind::Int { min: 0, max: None }),
    ("log_ratelimit", Kind::Text),
    ("policy_forward", Kind::Enum(&["ACCEPT", "DROP"])),
    ("policy_in", Kind::Enum(POLICIES)),
    ("policy_out", Kind::Enum(POLICIES)),
];

/// `$host_option_properties`.
const HOST: &[(&str, Kind)] = &[
    ("enable", Kind::Bool),
    ("log_level_forward", Kind::Enum(LOG_LEVELS)),
    ("log_level_in", Kind::Enum(LOG_LEVELS)),
    ("log_level_out", Kind::Enum(LOG_LEVELS)),
    ("log_nf_conntrack", Kind::Bool),
    ("ndp", Kind::Bool),
    ("nf_conntrack_allow_invalid", Kind::Bool),
    ("nf_conntrack_helpers", Kind::Helpers),
    (
        "nf_conntrack_max",
        Kind::Int {
            min: 32768,
            max: None,
        },
    ),
    (
        "nf_conntrack_tcp_timeout_established",
        Kind::Int {
            min: 7875,
            max: None,
        },
    ),
    (
        "nf_conntrack_tcp_timeout_syn_recv",
        Kind::Int {
            min: 30,
            max: Some(60),
        },
    ),
    ("nftables", Kind::Bool),
    ("nosmurfs", Kind::Bool),
    ("protection_synflood", Kind::Bool),
    (
        "protection_synflood_burst",
        Kind::Int {
            min: i64::MIN,
            max: None,
        },
    ),
    (
        "protection_synflood_rate",
        Kind::Int {
            min: i64::MIN,
            max: None,
        },
    ),
    ("smurf_log_level", Kind::Enum(LOG_LEVELS)),
    ("tcp_flags_log_level", Kind::Enum(LOG_LEVELS)),
    ("tcpflags", Kind::Bool),
];

/// `$vm_option_properties` (QEMU and LXC alike).
const GUEST: &[(&str, Kind)] = &[
    ("dhcp", Kind::Bool),
    ("enable", Kind::Bool),
    ("ipfilter", Kind::Bool),
    ("log_level_in", Kind::Enum(LOG_LEVELS)),
    ("log_level_out", Kind::Enum(LOG_LEVELS)),
    ("macfilter", Kind::Bool),
    ("ndp", Kind::Bool),
    ("policy_in", Kind::Enum(POLICIES)),
    ("policy_out", Kind::Enum(POLICIES)),
    ("radv", Kind::Bool),
];

fn specs(scope: &Scope) -> &'static [(&'static str, Kind)] {
    match scope {
        Scope::Cluster => CLUSTER,
        Scope::Node(_) => HOST,
        Scope::Guest(_) => GUEST,
    }
}

/// An integer option as set in the file (`None` when unset).
pub(super) fn int(file: Option<&FwFile>, key: &str) -> Option<i64> {
    file.and_then(|f| f.options.get(key))
        .and_then(Value::as_i64)
}

/// A string option as set in the file.
pub(super) fn text<'a>(file: Option<&'a FwFile>, key: &str) -> Option<&'a str> {
    file.and_then(|f| f.options.get(key))
        .and_then(Value::as_str)
}

fn parse(name: &str, kind: Kind, raw: &str) -> ApiResult<Value> {
    let err = |msg: String| ApiError::param(name, msg);
    match kind {
        Kind::Bool => match raw {
            "0" => Ok(json!(0)),
            "1" => Ok(json!(1)),
            _ => Err(err(format!("type check ('boolean') failed - got '{raw}'"))),
        },
        Kind::Int { min, max } => {
            let n: i64 = raw
                .parse()
                .map_err(|_| err(format!("type check ('integer') failed - got '{raw}'")))?;
            if n < min {
                return Err(err(format!("value must have a minimum value of {min}")));
            }
            if let Some(max) = max.filter(|m| n > *m) {
                return Err(err(format!("value must have a maximum value of {max}")));
            }
            Ok(json!(n))
        }
        Kind::Enum(values) => {
            if values.contains(&raw) {
                Ok(json!(raw))
            } else {
                Err(err(format!(
                    "value '{raw}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                )))
            }
        }
        Kind::Helpers => {
            let parts: Vec<&str> = raw.split(',').collect();
            if raw.ends_with(',') {
                return Err(super::format_error(name, "extraneous commas in list"));
            }
            if let Some(bad) = parts.iter().find(|h| !HELPERS.contains(h)) {
                // Perl's `die` without newline appends the source location.
                return Err(super::format_error(
                    name,
                    &format!("unknown helper {bad} at /usr/share/perl5/PVE/Firewall.pm line 1167."),
                ));
            }
            Ok(json!(raw.to_lowercase()))
        }
        Kind::Text => Ok(json!(raw)),
    }
}

fn options_object(file: Option<&FwFile>) -> Map<String, Value> {
    file.map(|f| f.options.clone().into_iter().collect())
        .unwrap_or_default()
}

/// GET/PUT `…/firewall/options`.
pub(super) fn handle(
    fw: &mut Firewall,
    scope: &Scope,
    method: &Method,
    params: &Params,
) -> ApiResult<Value> {
    let specs = specs(scope);
    let current = options_object(fw.file(scope));
    let current_digest = digest::object(&current);
    match method.as_str() {
        "GET" => {
            no_params(params)?;
            let mut out = current;
            // The digest is of the file as written; `enable` is read as PVE reads it.
            if matches!(scope, Scope::Cluster) && out.contains_key("enable") {
                out.insert("enable".into(), json!(fw.cluster_enable()));
            }
            out.insert("digest".into(), json!(current_digest));
            Ok(Value::Object(out))
        }
        "PUT" => {
            let mut allowed: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
            allowed.extend(["delete", "digest"]);
            check_allowed(params, &allowed)?;
            let mut values = Vec::new();
            for (name, kind) in specs {
                if let Some(raw) = params.get(*name) {
                    values.push((*name, parse(name, *kind, raw)?));
                }
            }
            assert_digest(&current_digest, params.get("digest"))?;
            let deletes: Vec<&str> = params
                .get("delete")
                .map(|d| {
                    d.split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
                        .collect()
                })
                .unwrap_or_default();
            let deletes: Vec<&str> = deletes.into_iter().filter(|d| !d.is_empty()).collect();
            if let Some(bad) = deletes.iter().find(|d| !specs.iter().any(|(n, _)| n == *d)) {
                return Err(ApiError::param("delete", format!("no such option '{bad}'")));
            }
            let cluster = matches!(scope, Scope::Cluster);
            if cluster
                && (deletes.contains(&"enable") || values.iter().any(|(n, _)| *n == "enable"))
            {
                fw.anti_lockout.expires = None;
            }
            let window = fw.anti_lockout.window;
            let mut expires = None;
            let file = fw.file_mut(scope);
            for d in deletes {
                file.options.remove(d);
            }
            for (name, mut value) in values {
                // enable > 1 is PVE's anti-lockout step: stored as the current Unix time,
                // read back as 0 once older than 60 s unless `enable: 1` confirms it.
                if cluster && name == "enable" && value.as_i64().is_some_and(|n| n > 1) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(2, |d| d.as_secs().max(2));
                    value = json!(now);
                    expires = Some(tokio::time::Instant::now() + window);
                }
                file.options.insert(name.to_owned(), value);
            }
            if expires.is_some() {
                fw.anti_lockout.expires = expires;
            }
            fw.prune(scope);
            Ok(Value::Null)
        }
        _ => Err(super::not_implemented(method, scope, &["options"])),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::call;
    use super::*;

    #[test]
    fn get_shows_only_explicit_keys_and_digest() {
        let mut fw = Firewall::new();
        let got = call(&mut fw, &Scope::Guest(100), "GET", &["options"], &[]).expect("get");
        assert_eq!(
            got,
            json!({ "digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709" })
        );
        call(
            &mut fw,
            &Scope::Guest(100),
            "PUT",
            &["options"],
            &[("enable", "1"), ("policy_in", "ACCEPT")],
        )
        .expect("put");
        let got = call(&mut fw, &Scope::Guest(100), "GET", &["options"], &[]).expect("get");
        assert_eq!(got["enable"], 1);
        assert_eq!(got["policy_in"], "ACCEPT");
        assert_eq!(got.as_object().expect("object").len(), 3);
    }

    #[test]
    fn delete_and_digest_checks() {
        let mut fw = Firewall::new();
        let s = Scope::Cluster;
        call(
            &mut fw,
            &s,
            "PUT",
            &["options"],
            &[("enable", "1"), ("policy_in", "ACCEPT")],
        )
        .expect("put");
        let digest = call(&mut fw, &s, "GET", &["options"], &[]).expect("get")["digest"]
            .as_str()
            .expect("digest")
            .to_owned();
        let stale = call(
            &mut fw,
            &s,
            "PUT",
            &["options"],
            &[("policy_in", "DROP"), ("digest", "abc")],
        )
        .unwrap_err();
        assert_eq!(
            (stale.status.as_u16(), stale.message.as_str()),
            (
                500,
                "detected modified configuration - file changed by other user? Try again."
            )
        );
        call(
            &mut fw,
            &s,
            "PUT",
            &["options"],
            &[("delete", "policy_in"), ("digest", &digest)],
        )
        .expect("delete");
        let got = call(&mut fw, &s, "GET", &["options"], &[]).expect("get");
        assert!(got.get("policy_in").is_none());
        assert_eq!(got["enable"], 1);
        let bad = call(&mut fw, &s, "PUT", &["options"], &[("delete", "dhcp")]).unwrap_err();
        assert_eq!(
            bad.errors.expect("param error")["delete"],
            "no such option 'dhcp'"
        );
    }

    #[test]
    fn cluster_enable_is_an_integer_and_an_unconfirmed_timestamp_expires() {
        let mut fw = Firewall::new();
        call(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("enable", "2")],
        )
        .expect("anti-lockout enable");
        let get = |fw: &mut Firewall| {
            call(fw, &Scope::Cluster, "GET", &["options"], &[]).expect("get")["enable"]
                .as_i64()
                .expect("an integer")
        };
        // Within the window: the Unix time of the write, and the firewall is on.
        let stamp = get(&mut fw);
        assert!(stamp > 1_700_000_000, "{stamp}");
        assert_eq!(fw.cluster_enable(), stamp);
        // Unconfirmed past the window: read back as 0, the firewall is off.
        fw.set_anti_lockout_window(std::time::Duration::ZERO);
        call(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("enable", "2")],
        )
        .expect("anti-lockout enable");
        assert_eq!(get(&mut fw), 0);
        assert_eq!(fw.cluster_enable(), 0);
        // Confirmed with enable=1: stays on.
        call(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("enable", "1")],
        )
        .expect("confirm");
        assert_eq!(get(&mut fw), 1);
        let e = call(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("enable", "yes")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["enable"],
            "type check ('integer') failed - got 'yes'"
        );
        // Guest `enable` is a boolean.
        let e = call(
            &mut fw,
            &Scope::Guest(100),
            "PUT",
            &["options"],
            &[("enable", "2")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["enable"],
            "type check ('boolean') failed - got '2'"
        );
    }

    #[test]
    fn keys_are_per_level() {
        let mut fw = Firewall::new();
        let e = call(
            &mut fw,
            &Scope::Cluster,
            "PUT",
            &["options"],
            &[("dhcp", "1")],
        )
        .unwrap_err();
        assert!(e.errors.expect("param error").contains_key("dhcp"));
        let e = call(
            &mut fw,
            &Scope::Node("pve1".into()),
            "PUT",
            &["options"],
            &[("policy_in", "DROP")],
        )
        .unwrap_err();
        assert!(e.errors.expect("param error").contains_key("policy_in"));
        call(
            &mut fw,
            &Scope::Node("pve1".into()),
            "PUT",
            &["options"],
            &[("nf_conntrack_allow_invalid", "1")],
        )
        .expect("host option");
        let e = call(
            &mut fw,
            &Scope::Guest(100),
            "PUT",
            &["options"],
            &[("policy_out", "MAYBE")],
        )
        .unwrap_err();
        assert_eq!(
            e.errors.expect("param error")["policy_out"],
            "value 'MAYBE' does not have a value in the enumeration 'ACCEPT, REJECT, DROP'"
        );
        // Deleting the last key removes the guest file again.
        call(
            &mut fw,
            &Scope::Guest(100),
            "PUT",
            &["options"],
            &[("enable", "1")],
        )
        .expect("put");
        call(
            &mut fw,
            &Scope::Guest(100),
            "PUT",
            &["options"],
            &[("delete", "enable")],
        )
        .expect("delete");
        assert!(fw.guests.is_empty());
    }
}
