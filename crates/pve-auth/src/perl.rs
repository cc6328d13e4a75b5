//! Lenient deserializers for values produced by PVE's Perl code.
//!
//! Perl output is loosely typed: integers arrive as numbers or strings (`"100"` from
//! `/cluster/nextid`, `"cpulimit":"4"`), booleans as `0`/`1`, `"0"`/`"1"` or JSON booleans.
//! Use these with `#[serde(deserialize_with = "…")]`; the `opt_*` variants also need
//! `#[serde(default)]` so an absent field becomes `None`.
//!
//! ```
//! use serde::Deserialize;
//! use pve_auth::perl;
//!
//! #[derive(Deserialize)]
//! struct Status {
//!     #[serde(deserialize_with = "perl::u32")]
//!     vmid: u32,
//!     #[serde(default, deserialize_with = "perl::opt_bool")]
//!     template: Option<bool>,
//!     #[serde(default, deserialize_with = "perl::opt_f64")]
//!     cpulimit: Option<f64>,
//! }
//! let s: Status = serde_json::from_str(r#"{"vmid":"100","template":1,"cpulimit":"1.5"}"#).unwrap();
//! assert_eq!((s.vmid, s.template, s.cpulimit), (100, Some(true), Some(1.5)));
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Smallest guest id PVE accepts.
pub const VMID_MIN: u32 = 100;
/// Largest guest id PVE accepts.
pub const VMID_MAX: u32 = 999_999_999;

struct BoolVisitor;

fn bool_from_str<E: de::Error>(v: &str) -> Result<bool, E> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(E::invalid_value(
            de::Unexpected::Str(v),
            &"a boolean (0/1, true/false, yes/no, on/off)",
        )),
    }
}

impl Visitor<'_> for BoolVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean as 0/1, \"0\"/\"1\", true/false, \"yes\"/\"no\" or \"on\"/\"off\"")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        if v == 0.0 {
            Ok(false)
        } else if v == 1.0 {
            Ok(true)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        bool_from_str(v)
    }
}

/// A number read from a JSON number or a numeric string.
trait Lenient: Sized {
    const EXPECTING: &'static str;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_u64(v: u64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
    fn from_text(v: &str) -> Option<Self>;
}

macro_rules! lenient_int {
    ($($t:ty),*) => {$(
        impl Lenient for $t {
            const EXPECTING: &'static str = concat!("an integer (", stringify!($t), ") as a number or a numeric string");
            fn from_i64(v: i64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_u64(v: u64) -> Option<Self> { <$t>::try_from(v).ok() }
            fn from_f64(v: f64) -> Option<Self> {
                // Accept 4.0 but not 4.5: a fractional part would be silently lost.
                if v.fract() != 0.0 || !v.is_finite() {
                    None
                } else if v >= 18_446_744_073_709_551_616.0 {
                    None // 2^64: would saturate to u64::MAX
                } else if v < 0.0 {
                    // `as` saturates; the range checks happen in from_i64/from_u64.
                    Self::from_i64(v as i64)
                } else {
                    Self::from_u64(v as u64)
                }
            }
            fn from_text(v: &str) -> Option<Self> {
                let v = v.trim();
                v.parse::<$t>().ok().or_else(|| v.parse::<f64>().ok().and_then(Self::from_f64))
            }
        }
    )*};
}
lenient_int!(u8, u16, u32, u64, i32, i64, usize);

impl Lenient for f64 {
    const EXPECTING: &'static str = "a number or a numeric string";
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
    fn from_text(v: &str) -> Option<Self> {
        v.trim().parse::<f64>().ok().filter(|f| f.is_finite())
    }
}

struct NumVisitor<T>(PhantomData<T>);

impl<T: Lenient> Visitor<'_> for NumVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_i64(v).ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_u64(v).ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::from_f64(v).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_text(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

struct StringVisitor;

impl Visitor<'_> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Deserializes `T` through `inner`, mapping an absent value or JSON `null` to `None`.
///
/// The value is buffered as JSON so one helper serves every lenient reader.
fn optional<'de, D, T>(
    d: D,
    inner: fn(serde_json::Value) -> Result<T, serde_json::Error>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => inner(v).map(Some).map_err(de::Error::custom),
    }
}

macro_rules! lenient_fns {
    ($( $name:ident, $opt:ident, $t:ty, $doc:literal; )*) => {$(
        #[doc = concat!("Reads ", $doc, " from a JSON number or a numeric string.")]
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            d.deserialize_any(NumVisitor::<$t>(PhantomData))
        }

        #[doc = concat!("Like [`", stringify!($name), "()`], for an optional field (use with `#[serde(default)]`); `null` is `None`.")]
        pub fn $opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            optional(d, $name)
        }
    )*};
}

lenient_fns! {
    u8, opt_u8, u8, "a `u8`";
    u16, opt_u16, u16, "a `u16`";
    u32, opt_u32, u32, "a `u32`";
    u64, opt_u64, u64, "a `u64`";
    i32, opt_i32, i32, "an `i32`";
    i64, opt_i64, i64, "an `i64`";
    usize, opt_usize, usize, "a `usize`";
    f64, opt_f64, f64, "an `f64`";
}

/// Reads a boolean from `0`/`1`, `"0"`/`"1"`, `true`/`false`, `"yes"`/`"no"`, `"on"`/`"off"`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// Like [`bool()`], for an optional field (use with `#[serde(default)]`); `null` is `None`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    optional(d, bool)
}

/// Reads a string, also accepting a number (written in its decimal form).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(StringVisitor)
}

/// Like [`string`], for an optional field (use with `#[serde(default)]`); `null` is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    optional(d, string)
}

/// Reads a guest id (100..=999999999) from a number or a numeric string.
pub fn vmid<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let id = u32(d)?;
    check_vmid(id).map_err(de::Error::custom)
}

/// Like [`vmid`], for an optional field (use with `#[serde(default)]`); `null` is `None`.
pub fn opt_vmid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional(d, vmid)
}

fn check_vmid(id: u32) -> Result<u32, String> {
    if (VMID_MIN..=VMID_MAX).contains(&id) {
        Ok(id)
    } else {
        Err(format!(
            "guest id {id} is out of range ({VMID_MIN}..={VMID_MAX})"
        ))
    }
}

/// A boolean as PVE sends it, for places where `deserialize_with` cannot be used (inside
/// `Vec`s or maps). Serializes as `0`/`1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PerlBool(pub bool);

impl<'de> Deserialize<'de> for PerlBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bool(d).map(PerlBool)
    }
}

impl serde::Serialize for PerlBool {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(self.0))
    }
}

impl From<PerlBool> for bool {
    fn from(b: PerlBool) -> bool {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // fields exist to be decoded; only some are asserted
    struct ClusterStatusNode {
        #[serde(rename = "type")]
        kind: String,
        name: String,
        #[serde(default, deserialize_with = "opt_u32")]
        nodeid: Option<u32>,
        #[serde(default, deserialize_with = "opt_bool")]
        local: Option<bool>,
        #[serde(default, deserialize_with = "opt_bool")]
        online: Option<bool>,
        #[serde(default, deserialize_with = "opt_bool")]
        quorate: Option<bool>,
    }

    #[test]
    fn cluster_status_entries() {
        // §3.4: booleans come as 0/1.
        let v = json!([
            {"type":"cluster","id":"cluster","name":"lab","nodes":2,"version":4,"quorate":1},
            {"type":"node","id":"node/pve1","name":"pve1","nodeid":1,"ip":"10.0.0.1","local":1,"online":1,"level":""}
        ]);
        let entries: Vec<ClusterStatusNode> = serde_json::from_value(v).unwrap();
        assert_eq!(entries[0].quorate, Some(true));
        assert_eq!(entries[0].local, None);
        assert_eq!(entries[1].nodeid, Some(1));
        assert_eq!(entries[1].online, Some(true));
        assert_eq!(entries[1].kind, "node");
    }

    #[derive(Debug, Deserialize)]
    struct VmConfig {
        #[serde(default, deserialize_with = "opt_f64")]
        cpulimit: Option<f64>,
        #[serde(default, deserialize_with = "opt_u64")]
        memory: Option<u64>,
        #[serde(default, deserialize_with = "opt_u32")]
        cores: Option<u32>,
        #[serde(default, deserialize_with = "opt_bool")]
        template: Option<bool>,
        #[serde(default, deserialize_with = "opt_bool")]
        onboot: Option<bool>,
        #[serde(default, deserialize_with = "opt_string")]
        name: Option<String>,
    }

    #[test]
    fn vm_config_with_loose_types() {
        // §4.6: "cpulimit":"4", numbers as strings, template 1.
        let c: VmConfig = serde_json::from_value(json!({
            "cpulimit":"4","memory":"2048","cores":2,"template":1,"onboot":"0","name":"exam-01",
            "digest":"2b1f…","net0":"virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1"
        }))
        .unwrap();
        assert_eq!(c.cpulimit, Some(4.0));
        assert_eq!(c.memory, Some(2048));
        assert_eq!(c.cores, Some(2));
        assert_eq!(c.template, Some(true));
        assert_eq!(c.onboot, Some(false));
        assert_eq!(c.name.as_deref(), Some("exam-01"));
        let empty: VmConfig = serde_json::from_value(json!({"name": null})).unwrap();
        assert!(empty.cpulimit.is_none() && empty.name.is_none());
    }

    #[derive(Debug, Deserialize)]
    struct B(#[serde(deserialize_with = "bool")] bool);

    #[test]
    fn every_bool_spelling() {
        for (v, want) in [
            (json!(1), true),
            (json!(0), false),
            (json!("1"), true),
            (json!("0"), false),
            (json!(true), true),
            (json!(false), false),
            (json!("yes"), true),
            (json!("no"), false),
            (json!("on"), true),
            (json!("off"), false),
            (json!("True"), true),
            (json!(1.0), true),
        ] {
            let b: B = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(b.0, want, "{v}");
        }
        for bad in [json!(2), json!("maybe"), json!(null), json!([1]), json!(-1)] {
            assert!(serde_json::from_value::<B>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct N {
        #[serde(deserialize_with = "i64")]
        i: i64,
        #[serde(deserialize_with = "u8")]
        small: u8,
    }

    #[test]
    fn integers_reject_fractions_and_overflow() {
        let n: N = serde_json::from_value(json!({"i":"-5","small":"7"})).unwrap();
        assert_eq!((n.i, n.small), (-5, 7));
        let n: N = serde_json::from_value(json!({"i":3.0,"small":" 9 "})).unwrap();
        assert_eq!((n.i, n.small), (3, 9));
        for bad in [
            json!({"i":"1.5","small":1}),
            json!({"i":1,"small":256}),
            json!({"i":1,"small":"-1"}),
            json!({"i":"abc","small":1}),
            json!({"i":true,"small":1}),
        ] {
            assert!(serde_json::from_value::<N>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Res {
        #[serde(deserialize_with = "vmid")]
        vmid: u32,
        #[serde(default, deserialize_with = "opt_vmid")]
        other: Option<u32>,
        #[serde(deserialize_with = "string")]
        id: String,
        flags: Vec<PerlBool>,
    }

    #[test]
    fn resources_entry_and_bool_lists() {
        // §3.1: vmid is a JSON number in /cluster/resources.
        let r: Res =
            serde_json::from_value(json!({"vmid":101,"id":42,"flags":[1,"0",true]})).unwrap();
        assert_eq!(r.vmid, 101);
        assert_eq!(r.other, None);
        assert_eq!(r.id, "42");
        assert_eq!(
            r.flags,
            vec![PerlBool(true), PerlBool(false), PerlBool(true)]
        );
        assert_eq!(serde_json::to_string(&PerlBool(true)).unwrap(), "1");
        let r: Res =
            serde_json::from_value(json!({"vmid":"101","other":"102","id":"x","flags":[]}))
                .unwrap();
        assert_eq!(r.other, Some(102));
    }

    #[derive(Debug, Deserialize)]
    struct F {
        #[serde(deserialize_with = "f64")]
        cpu: f64,
    }

    #[test]
    fn floats_from_numbers_and_strings() {
        // §4.1: "cpu":0.0112
        assert_eq!(
            serde_json::from_value::<F>(json!({"cpu":0.0112}))
                .unwrap()
                .cpu,
            0.0112
        );
        assert_eq!(
            serde_json::from_value::<F>(json!({"cpu":"0.5"}))
                .unwrap()
                .cpu,
            0.5
        );
        assert_eq!(
            serde_json::from_value::<F>(json!({"cpu":3})).unwrap().cpu,
            3.0
        );
        assert!(serde_json::from_value::<F>(json!({"cpu":"NaN"})).is_err());
        assert!(serde_json::from_value::<F>(json!({"cpu":"fast"})).is_err());
    }
}
