//! The `digest` of firewall lists and option sets.
//!
//! PVE (`copy_opject_with_digest`, `copy_list_with_digest`) feeds SHA-1 with
//! `key:value\n` for every defined scalar of every item, keys sorted, and hands the hex
//! digest back on every list item. Nested values (a rule's `errors`) are skipped. The
//! simulator renders the same bytes, so a digest read from it is as stable as on PVE.

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// The text Perl would stringify a JSON scalar to; `None` for null and nested values.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".to_owned()),
        Value::Bool(false) => Some(String::new()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn feed(sha: &mut Sha1, object: &Map<String, Value>) {
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    for key in keys {
        if let Some(text) = object.get(key).and_then(scalar_text) {
            sha.update(key.as_bytes());
            sha.update(b":");
            sha.update(text.as_bytes());
            sha.update(b"\n");
        }
    }
}

/// Digest of one object (an `[OPTIONS]` section).
pub(super) fn object(object: &Map<String, Value>) -> String {
    let mut sha = Sha1::new();
    feed(&mut sha, object);
    hex::encode(sha.finalize())
}

/// Digest of a list (rules, IP set entries, aliases, group or IP set names).
pub(super) fn list(items: &[Map<String, Value>]) -> String {
    let mut sha = Sha1::new();
    for item in items {
        feed(&mut sha, item);
    }
    hex::encode(sha.finalize())
}

/// The list with `digest` set on every item, and that digest.
pub(super) fn list_with_digest(items: Vec<Map<String, Value>>) -> (Vec<Value>, String) {
    let digest = list(&items);
    let out = items
        .into_iter()
        .map(|mut item| {
            item.insert("digest".to_owned(), Value::String(digest.clone()));
            Value::Object(item)
        })
        .collect();
    (out, digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn empty_digest_is_sha1_of_nothing() {
        assert_eq!(list(&[]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            object(&Map::new()),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn digest_is_sha1_of_sorted_key_value_lines() {
        // sha1("enable:1\npolicy_in:DROP\n")
        let expected = hex::encode(Sha1::digest(b"enable:1\npolicy_in:DROP\n"));
        let o = map(json!({ "policy_in": "DROP", "enable": 1 }));
        assert_eq!(object(&o), expected);
    }

    #[test]
    fn nested_values_are_ignored_but_order_of_items_counts() {
        let a = map(json!({ "type": "in", "errors": { "source": "x" } }));
        let a_plain = map(json!({ "type": "in" }));
        let b = map(json!({ "type": "out" }));
        assert_eq!(list(&[a.clone(), b.clone()]), list(&[a_plain, b.clone()]));
        assert_ne!(list(&[a.clone(), b.clone()]), list(&[b, a]));
        let (items, d) = list_with_digest(vec![map(json!({ "name": "x" }))]);
        assert_eq!(items[0]["digest"], json!(d));
    }
}
