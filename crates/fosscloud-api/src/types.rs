//! Identifiers, secrets and the typed answers of the API.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::error::Error;
use crate::lenient;

/// A secret string (a password, a SPICE ticket): `lab_types`' `Secret`, shared with every
/// labctl crate. `Debug` and `Display` print `***`; it reads a string or a number (the
/// server's `JSON_NUMERIC_CHECK` turns an all-digit password into a number).
pub use lab_types::Secret;

fn is_word(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A realm id: the numeric LDAP `ou` of an authentication realm, e.g. `4000013`.
///
/// The server's route accepts `\w+`; this type accepts ASCII letters, digits and `_`, and
/// refuses `0`, which the server treats as "no realm" (PHP `empty()`) and silently replaces by
/// its default realm.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealmId(String);

impl RealmId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RealmId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if !is_word(s) {
            return Err(Error::invalid_input(
                "realm id",
                s,
                "one or more ASCII letters, digits or '_' (for example 4000013)",
            ));
        }
        if s == "0" {
            return Err(Error::invalid_input(
                "realm id",
                s,
                "a realm other than 0 (the server reads 0 as 'no realm' and uses its default realm)",
            ));
        }
        Ok(RealmId(s.to_owned()))
    }
}

impl TryFrom<&str> for RealmId {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        value.parse()
    }
}

impl TryFrom<String> for RealmId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl From<u64> for RealmId {
    /// Realm ids are numeric in practice. `0` is kept here (it is what a server may send) but
    /// means "default realm" when sent.
    fn from(value: u64) -> Self {
        RealmId(value.to_string())
    }
}

impl fmt::Display for RealmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RealmId {
    /// Lenient: the server sends realm ids as numbers (after `JSON_NUMERIC_CHECK`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient::string(deserializer).map(RealmId)
    }
}

/// A VM pool id (the pool's UUID, `sstVirtualMachinePool`).
///
/// Sent as one path segment. The server accepts any text without `/`, but it URL-decodes the
/// value twice and strips a `.html` suffix, so this type accepts only ASCII letters, digits,
/// `-` and `_` (every UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(String);

impl PoolId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PoolId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid_input(
                "pool id",
                s,
                "a pool UUID: ASCII letters, digits, '-' or '_', not empty",
            ));
        }
        Ok(PoolId(s.to_owned()))
    }
}

impl TryFrom<&str> for PoolId {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        value.parse()
    }
}

impl TryFrom<String> for PoolId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PoolId {
    /// Lenient: whatever id the server sends is kept as text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient::string(deserializer).map(PoolId)
    }
}

/// A MAC address, validated as the server does (`Utils::isValidMacAddress`): six hex pairs
/// separated by colons, either case. Dashes, dots and bare 12-digit forms are refused.
///
/// Displayed in lower case, the form the server itself derives from its ARP table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// A MAC address from its six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid_input(
                "MAC address",
                s,
                "six two-digit hex pairs separated by ':' (for example 52:54:00:12:34:56)",
            )
        };
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl TryFrom<&str> for MacAddr {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        value.parse()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which VMs `/vm/list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VmKind {
    /// The user's dynamic pools and persistent VMs (the server's default).
    #[default]
    Owner,
    /// Only the user's dynamic pools.
    Dynamic,
    /// Only the user's persistent VMs.
    Persistent,
    /// Every dynamic VM (needs `dynamicVM.view = all`) plus the persistent VMs the user may see.
    All,
}

impl VmKind {
    /// The `/vm/list/<type>` segment; `None` for [`VmKind::Owner`], which is the default when
    /// the segment is left out.
    pub fn segment(self) -> Option<&'static str> {
        match self {
            VmKind::Owner => None,
            VmKind::Dynamic => Some("dynamic"),
            VmKind::Persistent => Some("persistent"),
            VmKind::All => Some("all"),
        }
    }
}

impl FromStr for VmKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        // Case-sensitive, like the server.
        match s {
            "" | "owner" => Ok(VmKind::Owner),
            "dynamic" => Ok(VmKind::Dynamic),
            "persistent" => Ok(VmKind::Persistent),
            "all" => Ok(VmKind::All),
            other => Err(Error::invalid_input(
                "VM list kind",
                other,
                "owner, dynamic, persistent or all",
            )),
        }
    }
}

impl fmt::Display for VmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.segment().unwrap_or("owner"))
    }
}

/// A VM's status as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VmStatus {
    /// A persistent VM whose libvirt domain is active.
    Online,
    /// A persistent VM that is not running (or whose node is unreachable).
    Offline,
    /// A dynamic pool with a free VM (a stub entry: assign it with `/vm/assign/<pool>`).
    Assignable,
    /// A dynamic VM assigned to the user (or, in the `all` listing, to anybody).
    Assigned,
    /// A status this crate does not know.
    Other(String),
}

impl VmStatus {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            VmStatus::Online => "online",
            VmStatus::Offline => "offline",
            VmStatus::Assignable => "assignable",
            VmStatus::Assigned => "assigned",
            VmStatus::Other(s) => s,
        }
    }
}

impl From<String> for VmStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "online" => VmStatus::Online,
            "offline" => VmStatus::Offline,
            "assignable" => VmStatus::Assignable,
            "assigned" => VmStatus::Assigned,
            _ => VmStatus::Other(value),
        }
    }
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for VmStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient::string(deserializer).map(VmStatus::from)
    }
}

/// A VM's type (`sstVirtualMachineType`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VmType {
    /// A VM that belongs to its users permanently.
    Persistent,
    /// A VM of a dynamic pool, handed out per session.
    Dynamic,
    /// A type this crate does not know.
    Other(String),
}

impl From<String> for VmType {
    fn from(value: String) -> Self {
        match value.as_str() {
            "persistent" => VmType::Persistent,
            "dynamic" => VmType::Dynamic,
            _ => VmType::Other(value),
        }
    }
}

impl fmt::Display for VmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmType::Persistent => "persistent",
            VmType::Dynamic => "dynamic",
            VmType::Other(s) => s,
        })
    }
}

impl<'de> Deserialize<'de> for VmType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient::string(deserializer).map(VmType::from)
    }
}

/// One VM entry as `/vm/list`, `/vm/assign` and the mapping calls return it.
///
/// The server always sends all 11 keys; stubs and Golden-Image entries carry `null` in
/// several. Fields the server's `JSON_NUMERIC_CHECK` may turn into numbers (name, password,
/// port, ...) are read from numbers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Vm {
    /// The libvirt domain UUID; `null` for an assignable pool stub.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub uuid: Option<String>,
    /// The VM's display name, or the pool's display name for dynamic VMs and stubs.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    /// The SPICE host (an IP address or a node name).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub ip: Option<String>,
    /// The node the VM runs on.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub node: Option<String>,
    /// The SPICE port.
    #[serde(default, deserialize_with = "lenient::opt_u16")]
    pub port: Option<u16>,
    /// The SPICE password (redacted in `Debug`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// The status; `null` for Golden-Image VMs in the `all` listing.
    #[serde(default)]
    pub status: Option<VmStatus>,
    /// `persistent` or `dynamic`.
    #[serde(default, rename = "type")]
    pub vm_type: Option<VmType>,
    /// The LDAP subtype (`Desktop`, `Server`, `Golden-Image`, ...).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub subtype: Option<String>,
    /// `windows`, `linux` or `null`.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub os: Option<String>,
    /// The pool the VM belongs to.
    #[serde(default)]
    pub pool: Option<PoolId>,
}

impl Vm {
    /// Whether this entry is a pool that can be assigned with
    /// [`FossCloudClient::assign`](crate::FossCloudClient::assign).
    pub fn is_assignable(&self) -> bool {
        self.status == Some(VmStatus::Assignable)
    }

    /// The SPICE endpoint `(host, port)`, when both are known.
    pub fn spice_endpoint(&self) -> Option<(&str, u16)> {
        Some((self.ip.as_deref()?, self.port?))
    }
}

/// An authentication realm from `/server/realms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Realm {
    /// The realm id (send it with [`ClientBuilder::realm`](crate::ClientBuilder::realm)).
    pub uid: RealmId,
    /// The realm's display name, if it has one.
    #[serde(
        default,
        rename = "displayName",
        deserialize_with = "lenient::opt_string"
    )]
    pub display_name: Option<String>,
    /// Whether this is the server's default realm.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub default: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_follow_the_server_rule() {
        let mac: MacAddr = "52:54:00:AB:cd:EF".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(mac.octets(), [0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        for bad in [
            "52-54-00-ab-cd-ef",
            "5254.00ab.cdef",
            "525400abcdef",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00:ab:cd:e",
            "52:54:00:ab:cd:eg",
            "52:54:00:ab:cd:ef\n",
            "+2:54:00:ab:cd:ef",
            "",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            let text = err.to_string();
            assert!(text.contains("MAC address"), "{text}");
            assert!(text.contains("separated by ':'"), "{text}");
        }
    }

    #[test]
    fn realm_ids_are_words_and_not_zero() {
        assert_eq!("4000013".parse::<RealmId>().unwrap().as_str(), "4000013");
        assert!("School_1".parse::<RealmId>().is_ok());
        for bad in ["", "0", "40-13", "4000013/x", "a b"] {
            assert!(bad.parse::<RealmId>().is_err(), "{bad:?}");
        }
        assert!("0"
            .parse::<RealmId>()
            .unwrap_err()
            .to_string()
            .contains("default realm"));
    }

    #[test]
    fn pool_ids_are_single_safe_segments() {
        assert!("57e3bd10-1934-4b4f-3d4c-6e31473bddab"
            .parse::<PoolId>()
            .is_ok());
        for bad in ["", "a/b", "pool.html", "a%2Fb", "a b", "x,ou=people"] {
            assert!(bad.parse::<PoolId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vm_kinds_map_to_list_segments() {
        assert_eq!(VmKind::default(), VmKind::Owner);
        assert_eq!(VmKind::Owner.segment(), None);
        assert_eq!(VmKind::All.segment(), Some("all"));
        assert_eq!("persistent".parse::<VmKind>().unwrap(), VmKind::Persistent);
        assert!(
            "All".parse::<VmKind>().is_err(),
            "case-sensitive like the server"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn vm_reads_numbers_nulls_and_redacts_the_password() {
        let vm: Vm = serde_json::from_str(
            r#"{"uuid":"7a476dcc","name":4711,"ip":"192.0.2.11","node":"node-01",
                "port":"5943","password":20170525,"status":"assigned","type":"dynamic",
                "subtype":"Desktop","os":"windows","pool":"57e3bd10","extra":1}"#,
        )
        .unwrap();
        assert_eq!(vm.name.as_deref(), Some("4711"));
        assert_eq!(vm.port, Some(5943));
        assert_eq!(vm.password.as_ref().map(Secret::expose), Some("20170525"));
        assert_eq!(vm.status, Some(VmStatus::Assigned));
        assert_eq!(vm.vm_type, Some(VmType::Dynamic));
        assert_eq!(vm.spice_endpoint(), Some(("192.0.2.11", 5943)));
        let debug = format!("{vm:?}");
        assert!(!debug.contains("20170525"), "{debug}");
        assert!(debug.contains("***"), "{debug}");

        let stub: Vm = serde_json::from_str(
            r#"{"uuid":null,"name":"DynVm-Test","ip":null,"node":null,"port":null,
                "password":null,"status":"assignable","type":"dynamic","subtype":null,
                "os":null,"pool":"57e3bd10"}"#,
        )
        .unwrap();
        assert!(stub.is_assignable());
        assert_eq!(stub.uuid, None);
        assert_eq!(stub.password, None);
        assert_eq!(stub.pool.as_ref().map(PoolId::as_str), Some("57e3bd10"));
        assert_eq!(stub.spice_endpoint(), None);
    }

    #[test]
    fn unknown_status_and_type_are_kept() {
        let vm: Vm = serde_json::from_str(r#"{"status":"migrating","type":"template"}"#).unwrap();
        assert_eq!(vm.status, Some(VmStatus::Other("migrating".into())));
        assert_eq!(vm.vm_type, Some(VmType::Other("template".into())));
    }

    #[test]
    fn realm_reads_numeric_uid() {
        let r: Realm = serde_json::from_str(
            r#"{"uid":4000013,"displayName":"Customer Virtual Machines","default":true}"#,
        )
        .unwrap();
        assert_eq!(r.uid.as_str(), "4000013");
        assert!(r.default);
        let r: Realm =
            serde_json::from_str(r#"{"uid":"abc","displayName":null,"default":false}"#).unwrap();
        assert_eq!(r.display_name, None);
        assert!(!r.default);
    }
}
