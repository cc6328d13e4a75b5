//! Readers for values PHP sends in several spellings.
//!
//! The server encodes with `JSON_NUMERIC_CHECK`, so any numeric-looking string arrives as a
//! number; booleans may arrive as `0`/`1` from other PHP code paths.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// Text that may have been turned into a number; `null` is refused.
pub(crate) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    opt_string(deserializer)?
        .ok_or_else(|| de::Error::custom("expected a string or number, got null"))
}

/// Text, number or `null`.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    deserializer.deserialize_option(V)
}

/// A port: number, numeric string or `null`.
pub(crate) fn opt_u16<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    match opt_string(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => text
            .trim()
            .parse::<u16>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a port number, got {text:?}"))),
    }
}

/// A boolean as `true`/`false`, `0`/`1`, or those as strings; `null` is false.
pub(crate) fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(false),
        Some(Raw::Bool(b)) => Ok(b),
        Some(Raw::Int(i)) => Ok(i != 0),
        Some(Raw::Text(t)) => match t.to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(true),
            "" | "0" | "false" => Ok(false),
            _ => Err(de::Error::custom(format!("expected a boolean, got {t:?}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_u16")]
        port: Option<u16>,
        #[serde(default, deserialize_with = "super::bool")]
        flag: bool,
    }

    #[test]
    fn reads_php_spellings() {
        let t: T = serde_json::from_str(r#"{"port":"5901","flag":1}"#).unwrap();
        assert_eq!((t.port, t.flag), (Some(5901), true));
        let t: T = serde_json::from_str(r#"{"port":null,"flag":"false"}"#).unwrap();
        assert_eq!((t.port, t.flag), (None, false));
        assert!(serde_json::from_str::<T>(r#"{"port":70000}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"flag":"maybe"}"#).is_err());
    }
}
