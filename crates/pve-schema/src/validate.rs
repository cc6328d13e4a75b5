//! Parameter validation with the texts of PVE's `JSONSchema.pm` (`check_object`,
//! `check_prop`, `check_type`, `check_format`, `parse_property_string`).

use std::collections::BTreeMap;

use regex::Regex;

use crate::format;
use crate::model::{Endpoint, Format, ParamType, Parameter};

/// Number of instances of each indexed parameter family (`net[n]` is `net0`…`net31`).
///
/// The API dump collapses `net0`…`netN` into `net[n]` and loses N, so the limits come from
/// the sources: qemu-server `QemuServer.pm` (`$MAX_NETS` 32, serial 4, parallel 3; numa
/// `Memory.pm` 8; virtiofs `Virtiofs.pm` 10; hostpci `PCI.pm` 16; usb `USB.pm` 14;
/// `Drive.pm` ide 4, scsi 31, virtio 16, sata 6, unused 256) and pve-container
/// `LXC/Config.pm` (net 32, mp 256, unused 256, dev 256). QEMU and LXC agree where the
/// family names overlap.
pub const INDEXED_FAMILIES: &[(&str, u32)] = &[
    ("dev", 256),
    ("hostpci", 16),
    ("ide", 4),
    ("ipconfig", 32),
    ("mp", 256),
    ("net", 32),
    ("numa", 8),
    ("parallel", 3),
    ("sata", 6),
    ("scsi", 31),
    ("serial", 4),
    ("unused", 256),
    ("usb", 14),
    ("virtio", 16),
    ("virtiofs", 10),
];

/// `not defined in schema` text of check_object.
pub(crate) const NOT_DEFINED: &str =
    "property is not defined in schema and the schema does not allow additional properties";

/// Split `net12` into (`net`, 12) when it is spelled as PVE's keys are: lower-case letters
/// and a decimal index without leading zeros.
fn split_indexed(name: &str) -> Option<(&str, u32)> {
    let pos = name.find(|c: char| c.is_ascii_digit())?;
    let (family, digits) = name.split_at(pos);
    if family.is_empty()
        || !family.bytes().all(|b| b.is_ascii_lowercase())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    Some((family, digits.parse().ok()?))
}

fn family_count(family: &str) -> Option<u32> {
    INDEXED_FAMILIES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, n)| *n)
}

impl Endpoint {
    /// The schema of parameter `name`, resolving indexed names: `net3` → the `net[n]` entry
    /// if 3 is below the family's limit (see [`INDEXED_FAMILIES`]).
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        // `net[n]` is the schema's spelling of a family, not a name a client can send.
        if name.ends_with("[n]") {
            return None;
        }
        if let Some(p) = self.parameters.get(name) {
            return Some(p);
        }
        let (family, idx) = split_indexed(name)?;
        let p = self.parameters.get(&format!("{family}[n]"))?;
        (idx < family_count(family)?).then_some(p)
    }

    /// Validate request parameters (form/query values as strings; path parameters
    /// included) the way PVE's `JSONSchema.pm` does. On failure returns the per-parameter
    /// error map of a 400 `Parameter verification failed.`.
    ///
    /// Booleans must be `0`/`1`: a caller that received a JSON body should map JSON
    /// `true`/`false` to `1`/`0` first (PVE accepts real JSON booleans there).
    pub fn validate(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<(), BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        check_object(
            &self.parameters,
            params,
            "",
            self.additional_properties,
            &|name| self.parameter(name),
            &mut errors,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// `check_object` of JSONSchema.pm for one level of string values. `resolve` finds the
/// schema of a given key (indexed families at the top level, plain lookup elsewhere).
fn check_object<'s>(
    schema: &'s BTreeMap<String, Parameter>,
    values: &BTreeMap<String, String>,
    prefix: &str,
    additional_properties: bool,
    resolve: &dyn Fn(&str) -> Option<&'s Parameter>,
    errors: &mut BTreeMap<String, String>,
) {
    let path = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    // First pass, over the schema: missing required keys and value checks.
    for (name, p) in schema {
        if let Some(family) = name.strip_suffix("[n]") {
            for (given, value) in values {
                if split_indexed(given).is_some_and(|(f, _)| f == family)
                    && resolve(given).is_some()
                {
                    check_prop(Some(value), p, &path(given), errors);
                }
            }
        } else {
            check_prop(values.get(name).map(String::as_str), p, &path(name), errors);
        }
    }
    // Second pass, over the values: `requires` and keys the schema does not know.
    for name in values.keys() {
        match resolve(name) {
            Some(p) => {
                if let Some(required) = &p.requires {
                    if !values.contains_key(required) {
                        add_error(
                            errors,
                            &path(required),
                            &format!("missing property required by '{}'", path(name)),
                        );
                    }
                }
            }
            None if !additional_properties => add_error(errors, &path(name), NOT_DEFINED),
            None => {}
        }
    }
}

/// `add_error`: a second error for one key is joined with a literal backslash-n, because
/// the Perl source uses a single-quoted `'\n'`.
fn add_error(errors: &mut BTreeMap<String, String>, path: &str, msg: &str) {
    let key = if path.is_empty() { "_root" } else { path };
    errors
        .entry(key.to_owned())
        .and_modify(|e| {
            e.push_str("\\n");
            e.push_str(msg);
        })
        .or_insert_with(|| msg.to_owned());
}

/// `is_number` of JSONSchema.pm (`$` also matches before one final newline).
pub(crate) fn is_number(value: &str) -> bool {
    let v = value.strip_suffix('\n').unwrap_or(value);
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(pos) => (&v[..pos], Some(&v[pos + 1..])),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some((int, frac)) => {
            (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac))
        }
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// `is_integer` of JSONSchema.pm: `^[+-]?\d+$`.
pub(crate) fn is_integer(value: &str) -> bool {
    let v = value.strip_suffix('\n').unwrap_or(value);
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// Perl's numification of a string that passed [`is_number`].
fn numify(value: &str) -> f64 {
    let v = value.trim_end_matches('\n');
    let v = v.strip_prefix('+').unwrap_or(v);
    // "5." is a number for Perl but not for Rust's parser.
    let owned;
    let v = if v.ends_with('.') {
        owned = format!("{v}0");
        owned.as_str()
    } else {
        v
    };
    v.parse().unwrap_or(f64::NAN)
}

/// Perl's stringification of a number from the schema: integral floats print without `.0`.
fn perl_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

/// Translate the Perl-only parts of a schema pattern the `regex` crate can express:
/// `(?^:…)` (Perl's stringified regex with default flags), `\0` (NUL) and `{,n}`.
pub(crate) fn compile_pattern(pattern: &str) -> Option<Regex> {
    // Perl >= 5.34 (PVE 9 ships 5.40) reads `{,n}` as `{0,n}`.
    // `(?^i:` is the same with flags (the vnet alias pattern): `(?i:` in the regex crate.
    let translated = pattern
        .replace("(?^:", "(?:")
        .replace("(?^i:", "(?i:")
        .replace(r"\0", r"\x00")
        .replace("{,", "{0,");
    // JSONSchema.pm matches `m/^$pattern$/` without grouping, so in a pattern with a
    // top-level `|` only the first branch is anchored at the start and only the last at
    // the end (the parallel[n] pattern is such a case). Perl's `$` also matches before a
    // final newline, handled by the caller stripping one.
    // Unicode classes repeated many times (the vnet alias: `[…\w\d\s]{0,256}`) outgrow the
    // default 10 MiB program limit; patterns are compiled once per parameter.
    regex::RegexBuilder::new(&format!("^{translated}$"))
        .size_limit(1 << 27)
        .build()
        .ok()
}

fn pattern_matches(p: &Parameter, pattern: &str, value: &str) -> bool {
    match p.compiled.get_or_init(|| compile_pattern(pattern)) {
        Some(re) => re.is_match(value.strip_suffix('\n').unwrap_or(value)),
        // Not expressible in the regex crate: accepted (counted in a test).
        None => true,
    }
}

/// `check_prop` for one scalar value (or its absence).
pub(crate) fn check_prop(
    value: Option<&str>,
    p: &Parameter,
    path: &str,
    errors: &mut BTreeMap<String, String>,
) {
    // Aliases are remapped to their target before checks.
    if p.alias.is_some() {
        return;
    }
    let Some(value) = value else {
        if !p.optional {
            add_error(errors, path, "property is missing and it is not optional");
        }
        return;
    };
    if p.ty == Some(ParamType::Array) {
        // Items arrive as one JSON array text; a plain value is a one-item list (PVE
        // turns a single form value into one). A JSON array must hold scalars.
        let ok = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .all(|i| i.is_string() || i.is_number() || i.is_boolean()),
            _ => true,
        };
        if !ok {
            add_error(
                errors,
                path,
                &format!("type check ('array') failed - got '{value}'"),
            );
        }
        return;
    }
    if let Some(ty) = p.ty {
        let ok = match ty {
            ParamType::Array => true,
            ParamType::String => true,
            ParamType::Boolean => value == "0" || value == "1",
            ParamType::Integer => is_integer(value),
            ParamType::Number => is_number(value),
        };
        if !ok {
            add_error(
                errors,
                path,
                &format!("type check ('{}') failed - got '{value}'", ty.as_str()),
            );
            return;
        }
    }
    if let Some(f) = &p.format {
        let result = match f {
            Format::Named(name) => format::check_named(name, value).unwrap_or(Ok(())),
            Format::PropertyString(keys) => check_property_string(keys, value, path),
        };
        if let Err(msg) = result {
            add_error(errors, path, &format!("invalid format - {msg}"));
            return;
        }
    }
    if let Some(pattern) = &p.pattern {
        if !pattern_matches(p, pattern, value) {
            add_error(errors, path, "value does not match the regex pattern");
            return;
        }
    }
    let len = value.chars().count() as u64;
    if let Some(max) = p.max_length {
        if len > max {
            add_error(
                errors,
                path,
                &format!("value may only be {max} characters long"),
            );
            return;
        }
    }
    if let Some(min) = p.min_length {
        if len < min {
            add_error(
                errors,
                path,
                &format!("value must be at least {min} characters long"),
            );
            return;
        }
    }
    if is_number(value) {
        let v = numify(value);
        if let Some(max) = &p.maximum {
            if max.as_f64().is_some_and(|m| v > m) {
                add_error(
                    errors,
                    path,
                    &format!("value must have a maximum value of {}", perl_number(max)),
                );
                return;
            }
        }
        if let Some(min) = &p.minimum {
            if min.as_f64().is_some_and(|m| v < m) {
                add_error(
                    errors,
                    path,
                    &format!("value must have a minimum value of {}", perl_number(min)),
                );
                return;
            }
        }
    }
    if let Some(values) = &p.enumeration {
        if !values.iter().any(|v| v == value) {
            add_error(
                errors,
                path,
                &format!(
                    "value '{value}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ),
            );
        }
    }
}

/// `parse_boolean` of JSONSchema.pm (case-insensitive `1|on|yes|true`, `0|off|no|false`).
fn parse_boolean(value: &str) -> Option<&'static str> {
    let v = value
        .strip_suffix('\n')
        .unwrap_or(value)
        .to_ascii_lowercase();
    match v.as_str() {
        "1" | "on" | "yes" | "true" => Some("1"),
        "0" | "off" | "no" | "false" => Some("0"),
        _ => None,
    }
}

/// `parse_property_string` + `check_object` for a property-string format such as
/// `virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1`. Returns the text PVE puts after
/// `invalid format - ` (a parse error, or `format error` followed by the per-key errors).
fn check_property_string(
    keys: &BTreeMap<String, Parameter>,
    data: &str,
    path: &str,
) -> Result<(), String> {
    let mut res: BTreeMap<String, String> = BTreeMap::new();
    let mut default_key: Option<&str> = None;
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                if res.contains_key(k) {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {k}\n"
                    ));
                }
                let mut key = k;
                let mut schema = keys.get(k);
                if let Some(alias) = schema.and_then(|s| s.alias.as_deref()) {
                    if let Some(key_alias) = schema.and_then(|s| s.key_alias.as_deref()) {
                        if res.contains_key(key_alias) {
                            return Err(format!("key alias '{key_alias}' is already defined\n"));
                        }
                        res.insert(key_alias.to_owned(), k.to_owned());
                    }
                    key = alias;
                    schema = keys.get(alias);
                    if res.contains_key(alias) {
                        return Err(format!("key '{alias}' is already defined (via alias)\n"));
                    }
                }
                let Some(schema) = schema else {
                    return Err(format!(
                        "invalid key in comma-separated list property: {key}\n"
                    ));
                };
                let value = match schema.ty {
                    Some(ParamType::Boolean) => parse_boolean(v).unwrap_or(v),
                    _ => v,
                };
                res.insert(key.to_owned(), value.to_owned());
            }
            None => {
                if let Some(dk) = default_key {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {dk}\n"
                    ));
                }
                let Some((dk, schema)) = keys.iter().find(|(_, s)| s.default_key) else {
                    return Err(
                        "value without key, but schema does not define a default key\n".to_owned(),
                    );
                };
                if res.contains_key(dk.as_str()) {
                    return Err(format!(
                        "duplicate key in comma-separated list property: {dk}\n"
                    ));
                }
                default_key = Some(dk);
                let value = match schema.ty {
                    Some(ParamType::Boolean) => parse_boolean(part).unwrap_or(part),
                    _ => part,
                };
                res.insert(dk.clone(), value.to_owned());
            }
            Some(_) => return Err("missing key in comma-separated list property\n".to_owned()),
        }
    }
    let mut errors = BTreeMap::new();
    check_object(keys, &res, path, false, &|k| keys.get(k), &mut errors);
    if errors.is_empty() {
        return Ok(());
    }
    // PVE::Exception::stringify: the message, then one `key: error` line per error.
    let mut msg = "format error\n".to_owned();
    for (k, e) in &errors {
        msg.push_str(&format!("{k}: {e}\n"));
    }
    Err(msg)
}
