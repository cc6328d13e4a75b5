//! Identifiers of the access-control API, checked like PVE checks them: role and group
//! ids, ACL paths, and privileges as an enum with PVE 9's names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

pub use pve_auth::Userid;

fn invalid(what: &str, input: &str, why: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: format!("{what} {input:?}"),
        why: why.into(),
    }
}

/// `[A-Za-z0-9.\-_]+`, as PVE's `pve-roleid` and `pve-groupid`.
fn id_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Check and wrap an id.
            pub fn new(id: impl Into<String>) -> Result<Self> {
                let id = id.into();
                if id_chars_ok(&id) {
                    Ok(Self(id))
                } else {
                    Err(invalid(
                        $what,
                        &id,
                        "allowed: 1 to 64 of letters, digits, '.', '-' and '_'",
                    ))
                }
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A role id (`pve-roleid`), e.g. `PVEVMUser` or `LabctlExam`.
    RoleId,
    "role id"
);
string_id!(
    /// A group id (`pve-groupid`), e.g. `students`.
    GroupId,
    "group id"
);

/// An ACL path: `/`, `/vms/<vmid>`, `/pool/<pool>[/<sub>…]`, `/nodes/<node>`,
/// `/storage/<id>`, `/access[/groups[/<g>]|/realm[/<r>]]`, `/sdn/…`, `/mapping/…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclPath(String);

impl AclPath {
    /// The root `/`.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// `/vms/<vmid>`.
    pub fn vm(vmid: pve_vm::VmId) -> Self {
        Self(format!("/vms/{vmid}"))
    }

    /// `/pool/<pool>`.
    pub fn pool(pool: &pve_vm::PoolId) -> Self {
        Self(format!("/pool/{}", pool.as_str()))
    }

    /// Check and normalise (`//` collapsed, no trailing `/`) a path.
    pub fn new(path: &str) -> Result<Self> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let word = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
        };
        let ok = path.starts_with('/')
            && match parts.as_slice() {
                [] => true,
                ["access"] | ["access", "groups" | "realm"] => true,
                ["access", "groups" | "realm", x] => word(x),
                ["vms", id] => id.parse::<u32>().is_ok_and(|n| n >= 100),
                ["vms" | "nodes" | "storage" | "pool" | "sdn" | "mapping"] => true,
                ["nodes" | "storage", x] => word(x),
                ["pool", rest @ ..] => rest.len() <= 3 && rest.iter().all(|x| word(x)),
                ["sdn" | "mapping", rest @ ..] => rest.iter().all(|x| word(x)),
                _ => false,
            };
        if !ok {
            return Err(invalid(
                "ACL path",
                path,
                "allowed: /, /vms/<vmid>, /pool/<pool>[/<sub>], /nodes/<node>, /storage/<id>, /access/groups/<group>, /access/realm/<realm>, /sdn/…, /mapping/…",
            ));
        }
        Ok(Self(format!("/{}", parts.join("/"))))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The guest of a `/vms/<vmid>` path.
    pub fn vmid(&self) -> Option<pve_vm::VmId> {
        self.0
            .strip_prefix("/vms/")
            .and_then(|id| id.parse().ok())
            .and_then(|id| pve_vm::VmId::new(id).ok())
    }
}

impl fmt::Display for AclPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AclPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl Serialize for AclPath {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AclPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Lenient: a path a newer server accepts is kept as sent.
        let s = String::deserialize(d)?;
        Ok(Self::new(&s).unwrap_or(Self(s)))
    }
}

macro_rules! privileges {
    ($($var:ident = $name:literal,)*) => {
        /// A privilege of PVE 9 (`pve-access-control` `$privgroups`). Unknown names read
        /// from a newer server become [`Privilege::Other`]; sending one is refused.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Privilege {
            $(
                #[doc = concat!("`", $name, "`")]
                $var,
            )*
            /// A name this crate does not know (read from a server, never sent).
            Other(String),
        }

        impl Privilege {
            /// Every privilege PVE 9 knows.
            pub const ALL: &'static [Privilege] = &[$(Privilege::$var,)*];

            /// PVE's name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Privilege::$var => $name,)*
                    Privilege::Other(s) => s,
                }
            }

            /// Read a name leniently (unknown names become [`Privilege::Other`]).
            pub fn lenient(s: &str) -> Self {
                match s {
                    $($name => Privilege::$var,)*
                    other => Privilege::Other(other.to_owned()),
                }
            }
        }
    };
}

privileges! {
    VmAllocate = "VM.Allocate",
    VmAudit = "VM.Audit",
    VmBackup = "VM.Backup",
    VmClone = "VM.Clone",
    VmConfigCdrom = "VM.Config.CDROM",
    VmConfigCloudinit = "VM.Config.Cloudinit",
    VmConfigCpu = "VM.Config.CPU",
    VmConfigDisk = "VM.Config.Disk",
    VmConfigHwType = "VM.Config.HWType",
    VmConfigMemory = "VM.Config.Memory",
    VmConfigNetwork = "VM.Config.Network",
    VmConfigOptions = "VM.Config.Options",
    VmConsole = "VM.Console",
    VmGuestAgentAudit = "VM.GuestAgent.Audit",
    VmGuestAgentFileRead = "VM.GuestAgent.FileRead",
    VmGuestAgentFileSystemMgmt = "VM.GuestAgent.FileSystemMgmt",
    VmGuestAgentFileWrite = "VM.GuestAgent.FileWrite",
    VmGuestAgentUnrestricted = "VM.GuestAgent.Unrestricted",
    VmMigrate = "VM.Migrate",
    VmPowerMgmt = "VM.PowerMgmt",
    VmSnapshot = "VM.Snapshot",
    VmSnapshotRollback = "VM.Snapshot.Rollback",
    SysAudit = "Sys.Audit",
    SysConsole = "Sys.Console",
    SysIncoming = "Sys.Incoming",
    SysAccessNetwork = "Sys.AccessNetwork",
    SysModify = "Sys.Modify",
    SysPowerMgmt = "Sys.PowerMgmt",
    SysSyslog = "Sys.Syslog",
    DatastoreAllocate = "Datastore.Allocate",
    DatastoreAllocateSpace = "Datastore.AllocateSpace",
    DatastoreAllocateTemplate = "Datastore.AllocateTemplate",
    DatastoreAudit = "Datastore.Audit",
    SdnAllocate = "SDN.Allocate",
    SdnAudit = "SDN.Audit",
    SdnUse = "SDN.Use",
    UserModify = "User.Modify",
    GroupAllocate = "Group.Allocate",
    RealmAllocate = "Realm.Allocate",
    RealmAllocateUser = "Realm.AllocateUser",
    PoolAllocate = "Pool.Allocate",
    PoolAudit = "Pool.Audit",
    MappingAudit = "Mapping.Audit",
    MappingModify = "Mapping.Modify",
    MappingUse = "Mapping.Use",
    PermissionsModify = "Permissions.Modify",
}

impl FromStr for Privilege {
    type Err = Error;

    /// Strict: only PVE 9 names (`VM.Monitor` is refused with a hint).
    fn from_str(s: &str) -> Result<Self> {
        match Self::lenient(s) {
            Privilege::Other(_) if s == "VM.Monitor" => Err(invalid(
                "privilege",
                s,
                "VM.Monitor was removed in PVE 9; use VM.GuestAgent.Audit, VM.GuestAgent.Unrestricted or the VM.GuestAgent.File* privileges",
            )),
            Privilege::Other(_) => Err(invalid(
                "privilege",
                s,
                "not a PVE 9 privilege (e.g. VM.Audit, VM.Console, VM.PowerMgmt)",
            )),
            p => Ok(p),
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Privilege {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Privilege {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::lenient(&String::deserialize(d)?))
    }
}

/// The comma-separated list PVE sends (`pve-priv-list`); refuses [`Privilege::Other`].
pub(crate) fn priv_list(privs: &[Privilege]) -> Result<String> {
    if let Some(Privilege::Other(bad)) = privs.iter().find(|p| matches!(p, Privilege::Other(_))) {
        return Err(invalid(
            "privilege",
            bad,
            "not a PVE 9 privilege; only known names are sent",
        ));
    }
    Ok(privs
        .iter()
        .map(Privilege::as_str)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_round_trip_and_vm_monitor_is_refused() {
        for p in Privilege::ALL {
            assert_eq!(&p.as_str().parse::<Privilege>().unwrap(), p);
        }
        let e = "VM.Monitor".parse::<Privilege>().unwrap_err().to_string();
        assert!(e.contains("removed in PVE 9"), "{e}");
        assert!("VM.Nope".parse::<Privilege>().is_err());
        assert_eq!(
            Privilege::lenient("VM.Future"),
            Privilege::Other("VM.Future".into())
        );
        assert!(priv_list(&[Privilege::VmAudit, Privilege::Other("X".into())]).is_err());
        assert_eq!(
            priv_list(&[Privilege::VmAudit, Privilege::VmConsole]).unwrap(),
            "VM.Audit,VM.Console"
        );
    }

    #[test]
    fn ids_and_paths_are_checked() {
        assert!(RoleId::new("LabctlExam").is_ok());
        assert!(RoleId::new("bad role").is_err());
        assert!(GroupId::new("").is_err());
        assert_eq!(AclPath::new("//vms/101/").unwrap().as_str(), "/vms/101");
        assert_eq!(AclPath::new("/vms/101").unwrap().vmid().unwrap().get(), 101);
        assert!(AclPath::new("/pool/exam1/s07").is_ok());
        assert!(AclPath::new("/").is_ok());
        let e = AclPath::new("/vms/abc").unwrap_err().to_string();
        assert!(e.contains("/vms/abc") && e.contains("allowed"), "{e}");
        assert!(AclPath::new("vms/101").is_err());
        assert!(AclPath::new("/nowhere").is_err());
    }
}
