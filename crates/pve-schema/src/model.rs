//! The data model of the extract: endpoints and their parameters.
//!
//! Field names and their (alphabetical) declaration order match `schema/extract.json`, so
//! serialising these types gives the committed file byte for byte.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// One method on one path template of the PVE API, e.g. `POST /nodes/{node}/qemu/{vmid}/clone`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Whether parameters not listed in [`Endpoint::parameters`] are accepted. PVE rejects
    /// them only when the schema says `additionalProperties: 0` explicitly.
    #[serde(rename = "additionalProperties")]
    pub additional_properties: bool,
    /// `allowtoken => 0`: PVE refuses the call to API tokens ("need proper ticket"), e.g.
    /// `PUT /access/password`. Absent from the extract when tokens are allowed.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub allowtoken: bool,
    /// HTTP method in upper case: `GET`, `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// Parameters by name, path parameters included. Indexed families such as `net0`…`net31`
    /// appear once, as `net[n]` (see [`Endpoint::parameter`]).
    pub parameters: BTreeMap<String, Parameter>,
    /// Path template relative to `/api2/json`, e.g. `/nodes/{node}/tasks/{upid}/status`.
    pub path: String,
    /// The schema's `permissions` object verbatim (`check`, `user`, `description`,
    /// `allowtoken`); read it with [`Endpoint::permission_rule`]. `None`: the schema has
    /// none, so only `root@pam` may call the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Value>,
    /// `protected => 1`: the real server hands the call to the privileged `pvedaemon`.
    pub protected: bool,
    /// `proxyto`: the parameter naming the node the call is forwarded to (usually `node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxyto: Option<String>,
    /// Top-level `type` of the `returns` schema (`null`, `string`, `object`, `array`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<String>,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_true(b: &bool) -> bool {
    *b
}

/// JSON-schema type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any string.
    String,
    /// Decimal integer, optionally signed (`^[+-]?\d+$`).
    Integer,
    /// Decimal number, optionally with fraction and exponent.
    Number,
    /// In form encoding only `0` or `1`.
    Boolean,
    /// A list of strings (`agent/exec`'s `command`). A form sends the key once per item;
    /// for validation the items are given as one JSON array text, e.g. `["ip","-j"]`
    /// (a plain value counts as a one-item list, as PVE reads a single form value).
    Array,
}

impl ParamType {
    /// The name PVE uses in its messages (`type check ('boolean') failed …`).
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
        }
    }
}

/// The `format` of a parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Format {
    /// A registered format by name, e.g. `pve-vmid`, `dns-name`, `pve-configid-list`.
    Named(String),
    /// A property string (`key=value,key=value`, e.g. `net[n]`), described key by key.
    PropertyString(BTreeMap<String, Parameter>),
}

/// Schema of one parameter (or of one key inside a property string).
///
/// Serialised names are those of the PVE schema (`maxLength`, `typetext`, …).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Property-string keys only: this key is another spelling of the named key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Documented default (informational; PVE does not fill it in during validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Property-string keys only: a part without `key=` is this key's value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_key: bool,
    /// Allowed values, in schema order (the error message lists them in this order).
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enumeration: Option<Vec<String>>,
    /// Registered format name or property-string description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Property-string keys only: an alias key also stores its own name under this key
    /// (`virtio=MAC` sets `model=virtio`).
    #[serde(rename = "keyAlias", default, skip_serializing_if = "Option::is_none")]
    pub key_alias: Option<String>,
    /// Maximum length in characters.
    #[serde(rename = "maxLength", default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Inclusive numeric maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<Number>,
    /// Minimum length in characters.
    #[serde(rename = "minLength", default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// Inclusive numeric minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<Number>,
    /// Whether the parameter may be absent.
    #[serde(default)]
    pub optional: bool,
    /// Perl regex the value must match; PVE tests `m/^$pattern$/` (no grouping, so a
    /// top-level `|` leaves the branches half-anchored, as in PVE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Another parameter that must be present whenever this one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// Value type; absent only for property-string alias keys.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<ParamType>,
    /// Human-readable type summary from the schema, e.g. `<integer> (100 - 999999999)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typetext: Option<String>,
    /// The compiled `pattern`, built on first use; `None` inside if the `regex` crate cannot
    /// express the Perl pattern (then the pattern is not enforced).
    #[serde(skip)]
    pub(crate) compiled: OnceLock<Option<Regex>>,
}

/// The whole extract file: every endpoint the project uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extract {
    /// Sorted by path, then method.
    pub endpoints: Vec<Endpoint>,
}
