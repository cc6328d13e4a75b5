//! Building `schema/extract.json` from the full PVE API schema and `schema/endpoints.txt`.
//!
//! `cargo xtask schema` calls [`build_extract`]; the crate's tests call it too, to prove the
//! committed extract is exactly what the generator makes from the reference schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number, Value};

use crate::model::{Endpoint, Extract, Format, ParamType, Parameter};
use crate::Error;

/// HTTP methods the PVE API uses.
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// One line of `endpoints.txt`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedEndpoint {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template, e.g. `/nodes/{node}/qemu`.
    pub path: String,
}

/// Parse the endpoint list: one `METHOD /path/{template}` per line, `#` starts a comment,
/// blank lines are ignored. Duplicates and malformed lines are errors naming the line.
pub fn parse_endpoint_list(text: &str) -> Result<Vec<ListedEndpoint>, Error> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
            return Err(Error::EndpointList {
                line: line_no,
                message: format!("expected 'METHOD /path', got '{line}'"),
            });
        };
        if !METHODS.contains(&method) {
            return Err(Error::EndpointList {
                line: line_no,
                message: format!("method '{method}' is not one of {}", METHODS.join(", ")),
            });
        }
        if !path.starts_with('/') {
            return Err(Error::EndpointList {
                line: line_no,
                message: format!("path '{path}' must start with '/'"),
            });
        }
        let entry = ListedEndpoint {
            method: method.to_owned(),
            path: path.to_owned(),
        };
        if !seen.insert(entry.clone()) {
            return Err(Error::EndpointList {
                line: line_no,
                message: format!("'{method} {path}' is listed twice"),
            });
        }
        out.push(entry);
    }
    Ok(out)
}

/// Build the extract (the text of `schema/extract.json`) for the endpoints listed in
/// `endpoints` (the text of `endpoints.txt`) from `full`, the parsed `pve-api-schema.json`.
///
/// The output is deterministic: endpoints sorted by path then method, object keys sorted,
/// two-space indentation, trailing newline.
pub fn build_extract(full: &Value, endpoints: &str) -> Result<String, Error> {
    let listed = parse_endpoint_list(endpoints)?;
    let mut index = BTreeMap::new();
    collect(full, &mut index)?;

    let mut out = Vec::with_capacity(listed.len());
    for entry in &listed {
        let info = index
            .get(&(entry.path.as_str(), entry.method.as_str()))
            .ok_or_else(|| Error::NotInSchema {
                method: entry.method.clone(),
                path: entry.path.clone(),
            })?;
        out.push(convert_endpoint(&entry.method, &entry.path, info)?);
    }
    out.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    let mut text = serde_json::to_string_pretty(&Extract { endpoints: out })?;
    text.push('\n');
    Ok(text)
}

/// Index every `info.METHOD` object of the schema tree by (path, method).
fn collect<'a>(
    node: &'a Value,
    index: &mut BTreeMap<(&'a str, &'a str), &'a Map<String, Value>>,
) -> Result<(), Error> {
    match node {
        Value::Array(items) => {
            for item in items {
                collect(item, index)?;
            }
        }
        Value::Object(obj) => {
            if let Some(info) = obj.get("info").and_then(Value::as_object) {
                let path = obj.get("path").and_then(Value::as_str).ok_or_else(|| {
                    Error::Schema("a tree node with 'info' has no string 'path'".to_owned())
                })?;
                for (method, def) in info {
                    let def = def.as_object().ok_or_else(|| {
                        Error::Schema(format!("info.{method} of '{path}' is not an object"))
                    })?;
                    index.insert((path, method.as_str()), def);
                }
            }
            if let Some(children) = obj.get("children") {
                collect(children, index)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn convert_endpoint(
    method: &str,
    path: &str,
    info: &Map<String, Value>,
) -> Result<Endpoint, Error> {
    let ctx = format!("{method} {path}");
    let params = info.get("parameters").and_then(Value::as_object);
    let additional_properties = match params.and_then(|p| p.get("additionalProperties")) {
        // PVE's check_object rejects unknown keys only if additionalProperties is defined
        // and false; when it is absent anything extra is accepted.
        None => true,
        Some(v) => perl_true(v),
    };
    let mut parameters = BTreeMap::new();
    if let Some(props) = params.and_then(|p| p.get("properties")) {
        let props = props.as_object().ok_or_else(|| {
            Error::Schema(format!("{ctx}: parameters.properties is not an object"))
        })?;
        for (name, def) in props {
            parameters.insert(
                name.clone(),
                convert_param(&format!("{ctx} {name}"), def, true)?,
            );
        }
    }
    Ok(Endpoint {
        additional_properties,
        allowtoken: info.get("allowtoken").is_none_or(perl_true),
        method: method.to_owned(),
        parameters,
        path: path.to_owned(),
        permissions: info.get("permissions").cloned(),
        protected: info.get("protected").is_some_and(perl_true),
        proxyto: info
            .get("proxyto")
            .and_then(Value::as_str)
            .map(str::to_owned),
        returns: info
            .get("returns")
            .and_then(|r| r.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Convert one parameter schema. `top` is false for keys inside a property string, where
/// nested property strings are dropped (the validator checks one level).
fn convert_param(ctx: &str, def: &Value, top: bool) -> Result<Parameter, Error> {
    let def = def
        .as_object()
        .ok_or_else(|| Error::Schema(format!("{ctx}: parameter schema is not an object")))?;
    let ty = match def.get("type").and_then(Value::as_str) {
        None => None,
        Some("string") => Some(ParamType::String),
        Some("integer") => Some(ParamType::Integer),
        Some("number") => Some(ParamType::Number),
        Some("boolean") => Some(ParamType::Boolean),
        Some("array") if top => Some(ParamType::Array),
        Some(other) => {
            return Err(Error::Unsupported(format!(
                "{ctx}: parameter type '{other}' is not supported by the validator \
                 (only string, integer, number, boolean, and array at the top level); extend pve-schema first"
            )))
        }
    };
    if ty.is_none() && top {
        return Err(Error::Schema(format!("{ctx}: parameter has no type")));
    }
    let format = match def.get("format") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(Format::Named(name.clone())),
        Some(Value::Object(keys)) if top => {
            let mut out = BTreeMap::new();
            for (key, sub) in keys {
                out.insert(
                    key.clone(),
                    convert_param(&format!("{ctx}.{key}"), sub, false)?,
                );
            }
            Some(Format::PropertyString(out))
        }
        Some(Value::Object(_)) => None,
        Some(other) => {
            return Err(Error::Schema(format!("{ctx}: unexpected format {other}")));
        }
    };
    Ok(Parameter {
        alias: str_field(def, "alias"),
        default: def.get("default").filter(|v| !v.is_null()).cloned(),
        default_key: def.get("default_key").is_some_and(perl_true),
        enumeration: match def.get("enum") {
            None => None,
            Some(Value::Array(values)) => Some(
                values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            Some(other) => return Err(Error::Schema(format!("{ctx}: enum is {other}"))),
        },
        format,
        key_alias: str_field(def, "keyAlias"),
        max_length: uint_field(ctx, def, "maxLength")?,
        maximum: number_field(ctx, def, "maximum")?,
        min_length: uint_field(ctx, def, "minLength")?,
        minimum: number_field(ctx, def, "minimum")?,
        optional: def.get("optional").is_some_and(perl_true),
        pattern: str_field(def, "pattern"),
        requires: str_field(def, "requires"),
        ty,
        typetext: str_field(def, "typetext"),
        compiled: Default::default(),
    })
}

fn str_field(def: &Map<String, Value>, key: &str) -> Option<String> {
    def.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Numbers arrive as JSON numbers or, from Perl, as strings (`"minimum": "0"`).
fn number_field(ctx: &str, def: &Map<String, Value>, key: &str) -> Result<Option<Number>, Error> {
    match def.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.clone())),
        Some(Value::String(s)) => {
            let parsed: Value = serde_json::from_str(s.trim())
                .map_err(|_| Error::Schema(format!("{ctx}: {key} '{s}' is not a number")))?;
            match parsed {
                Value::Number(n) => Ok(Some(n)),
                _ => Err(Error::Schema(format!("{ctx}: {key} '{s}' is not a number"))),
            }
        }
        Some(other) => Err(Error::Schema(format!("{ctx}: {key} is {other}"))),
    }
}

fn uint_field(ctx: &str, def: &Map<String, Value>, key: &str) -> Result<Option<u64>, Error> {
    match number_field(ctx, def, key)? {
        None => Ok(None),
        Some(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Error::Schema(format!("{ctx}: {key} {n} is not a length"))),
    }
}

/// Perl truthiness of a JSON scalar: `0`, `""`, `"0"`, `false` and null are false.
fn perl_true(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_list_rejects_bad_lines_with_line_numbers() {
        let err = parse_endpoint_list("GET /a\nPATCH /b\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("PATCH"), "{err}");
        let err = parse_endpoint_list("GET /a\n# c\nGET /a # again\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(err.to_string().contains("twice"), "{err}");
        let err = parse_endpoint_list("GET nodes\n").unwrap_err();
        assert!(err.to_string().contains("must start with '/'"), "{err}");
        let ok = parse_endpoint_list("  # only comments\n\nPOST /x/{y} # trailing\n").unwrap();
        assert_eq!(
            ok,
            vec![ListedEndpoint {
                method: "POST".into(),
                path: "/x/{y}".into()
            }]
        );
    }

    #[test]
    fn build_extract_normalises_perl_values_and_sorts() {
        let full = json!([{
            "path": "/b", "text": "b",
            "info": {"GET": {
                "parameters": {"additionalProperties": 0, "properties": {
                    "lim": {"type": "integer", "minimum": "0", "optional": 1, "typetext": "<integer>"},
                    "flag": {"type": "boolean", "optional": 0, "default": 0}
                }},
                "returns": {"type": "array", "items": {}}, "protected": 1, "proxyto": "node"
            }},
            "children": [{"path": "/b/{c}", "text": "{c}", "info": {"DELETE": {
                "parameters": {"properties": {"c": {"type": "string", "enum": ["x", 1]}}},
                "returns": {"type": "null"}
            }}}]
        }, {"path": "/a", "text": "a", "info": {"POST": {"parameters": {}, "returns": {}}}}]);
        let text = build_extract(&full, "DELETE /b/{c}\nGET /b\nPOST /a\n").unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let eps = v["endpoints"].as_array().unwrap();
        let order: Vec<_> = eps.iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert_eq!(order, ["/a", "/b", "/b/{c}"]);
        assert_eq!(eps[0]["additionalProperties"], json!(true));
        assert_eq!(eps[1]["additionalProperties"], json!(false));
        assert_eq!(eps[1]["protected"], json!(true));
        assert_eq!(eps[1]["proxyto"], json!("node"));
        assert_eq!(eps[1]["returns"], json!("array"));
        assert_eq!(eps[1]["parameters"]["lim"]["minimum"], json!(0));
        assert_eq!(eps[1]["parameters"]["flag"]["optional"], json!(false));
        assert_eq!(eps[2]["parameters"]["c"]["enum"], json!(["x", "1"]));
        assert_eq!(eps[2]["protected"], json!(false));
        assert!(text.ends_with("}\n"));
        // Deterministic: a second run gives the same bytes.
        assert_eq!(
            text,
            build_extract(&full, "POST /a\nGET /b\nDELETE /b/{c}\n").unwrap()
        );
    }

    #[test]
    fn build_extract_names_missing_endpoints_and_unsupported_types() {
        let full = json!([{"path": "/a", "info": {"GET": {"parameters": {"properties": {
            "list": {"type": "object"}}}}}}]);
        let err = build_extract(&full, "PUT /a\n").unwrap_err();
        assert_eq!(err.to_string(), "'PUT /a' is not in the PVE API schema");
        let err = build_extract(&full, "GET /a\n").unwrap_err();
        assert!(err.to_string().contains("'object'"), "{err}");
    }
}
