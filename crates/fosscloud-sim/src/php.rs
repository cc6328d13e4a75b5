//! The few PHP behaviours the server's answers depend on: `urldecode`, `trim`, `empty`,
//! `is_numeric`, loose `==` between strings, and `json_encode` with
//! `JSON_PRETTY_PRINT | JSON_NUMERIC_CHECK`.

use std::fmt::Write as _;

/// A PHP value as the API builds its answers (arrays keep insertion order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PhpValue {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<PhpValue>),
    Map(Vec<(String, PhpValue)>),
}

impl PhpValue {
    /// A string, or `null` when absent.
    pub(crate) fn opt_str(value: Option<&str>) -> PhpValue {
        value.map_or(PhpValue::Null, |s| PhpValue::Str(s.to_owned()))
    }
}

/// PHP `urldecode`: `+` is a space, `%XX` a byte, malformed escapes stay as they are. Bytes
/// that are not UTF-8 are read as Latin-1, as Yii's `decodePathInfo` does.
pub(crate) fn urldecode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
    }
}

/// PHP `trim` with its default character set.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

/// PHP `empty()` for a string that may be absent: `null`, `""` and `"0"` are empty.
pub(crate) fn empty(s: Option<&str>) -> bool {
    matches!(s, None | Some("") | Some("0"))
}

/// PHP 7 `is_numeric` for strings: optional leading whitespace, sign, digits with an optional
/// fraction, optional exponent; nothing after.
pub(crate) fn is_numeric(s: &str) -> bool {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0B', '\x0C']);
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == start {
            return false;
        }
        i = j;
    }
    i == b.len()
}

/// PHP `==` between two strings: numerically when both are numeric, else byte equality.
pub(crate) fn loose_eq(a: &str, b: &str) -> bool {
    if is_numeric(a) && is_numeric(b) {
        match (parse_number(a), parse_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
    } else {
        a == b
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim_start_matches([' ', '\t', '\n', '\r', '\x0B', '\x0C'])
        .parse::<f64>()
        .ok()
}

/// `json_encode($value, JSON_PRETTY_PRINT | JSON_NUMERIC_CHECK)` with PHP's default escaping
/// (`/` as `\/`, non-ASCII as `\uXXXX`).
pub(crate) fn json_encode(value: &PhpValue) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn write_value(out: &mut String, value: &PhpValue, depth: usize) {
    match value {
        PhpValue::Null => out.push_str("null"),
        PhpValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PhpValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        PhpValue::Str(s) => write_numeric_checked(out, s),
        PhpValue::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (n, item) in items.iter().enumerate() {
                indent(out, depth + 1);
                write_value(out, item, depth + 1);
                if n + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
        PhpValue::Map(entries) => {
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for (n, (key, item)) in entries.iter().enumerate() {
                indent(out, depth + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, depth + 1);
                if n + 1 < entries.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// `JSON_NUMERIC_CHECK`: a numeric string is written as an integer when it is one that fits,
/// else as a float.
fn write_numeric_checked(out: &mut String, s: &str) {
    if is_numeric(s) {
        let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0B', '\x0C']);
        let integral = !t.contains(['.', 'e', 'E']);
        if integral {
            if let Ok(i) = t.parse::<i64>() {
                let _ = write!(out, "{i}");
                return;
            }
        }
        if let Ok(f) = t.parse::<f64>() {
            if f.is_finite() {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    let _ = write!(out, "{f:.1}");
                } else {
                    let _ = write!(out, "{f}");
                }
                return;
            }
        }
    }
    write_string(out, s);
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urldecode_matches_php() {
        assert_eq!(urldecode("a%2Fb+c"), "a/b c");
        assert_eq!(urldecode("100%"), "100%");
        assert_eq!(urldecode("%zz%4"), "%zz%4");
        assert_eq!(urldecode("caf%C3%A9"), "café");
        assert_eq!(urldecode("caf%E9"), "café", "Latin-1 fallback");
    }

    #[test]
    fn numeric_strings_follow_php7() {
        for yes in [
            "0", "4000013", "-1", "+1.5", ".5", "5.", "1e3", " 12", "0123",
        ] {
            assert!(is_numeric(yes), "{yes:?}");
        }
        for no in [
            "",
            " ",
            "12 ",
            "1e",
            "0x1A",
            "abc",
            "5750786d-045c",
            "1.2.3",
            "-",
        ] {
            assert!(!is_numeric(no), "{no:?}");
        }
        assert!(loose_eq("4000013", "04000013"));
        assert!(!loose_eq("abc", "ABC"));
        assert!(empty(Some("0")) && empty(None) && empty(Some("")) && !empty(Some("00")));
    }

    #[test]
    fn json_encode_is_php_shaped() {
        let v = PhpValue::Map(vec![
            ("status".into(), PhpValue::Int(200)),
            ("uid".into(), PhpValue::Str("4000013".into())),
            ("pw".into(), PhpValue::Str("0123".into())),
            ("f".into(), PhpValue::Str("1e3".into())),
            ("ip".into(), PhpValue::Str("192.0.2.1".into())),
            ("path".into(), PhpValue::Str("a/b é".into())),
            ("none".into(), PhpValue::Null),
            ("list".into(), PhpValue::List(vec![])),
            ("ok".into(), PhpValue::Bool(true)),
        ]);
        assert_eq!(
            json_encode(&v),
            "{\n    \"status\": 200,\n    \"uid\": 4000013,\n    \"pw\": 123,\n    \"f\": 1000.0,\n    \"ip\": \"192.0.2.1\",\n    \"path\": \"a\\/b \\u00e9\",\n    \"none\": null,\n    \"list\": [],\n    \"ok\": true\n}"
        );
    }
}
