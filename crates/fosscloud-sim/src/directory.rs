//! The simulated server's configuration switches and its in-memory LDAP directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// What `Debug` prints instead of a password: fixtures hold real-looking secrets, and a
/// `{:?}` of the directory ends up in test failures and logs.
const REDACTED: &str = "***";

/// The server's API configuration (`api_config.php`) plus the presence of the FC4School
/// module and the SPICE address mode.
///
/// Field names follow the PHP configuration (`defaultRealm`, `macByParameter`) in files;
/// snake_case spellings are accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    /// `enable`: the API answers at all (false → 500022 on every action). Shipped `false`;
    /// the simulator's default is `true` (a server whose admin turned it on).
    pub enable: bool,
    /// `defaultRealm`: used when a request names no realm (empty or `0` → 500023).
    #[serde(alias = "default_realm")]
    pub default_realm: String,
    /// `macByParameter`: a MAC address may be given in the URL of the mapping calls.
    #[serde(alias = "mac_by_parameter")]
    pub mac_by_parameter: bool,
    /// Whether the FC4School `school` module is installed (mapping calls need it).
    #[serde(alias = "school_module")]
    pub school_module: bool,
    /// `spiceByName` (`vm_config.php`): a VM's `ip` is its node's name instead of the node's
    /// `pub` VLAN address.
    #[serde(alias = "spice_by_name")]
    pub spice_by_name: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enable: true,
            default_realm: "4000013".into(),
            mac_by_parameter: false,
            school_module: true,
            spice_by_name: false,
        }
    }
}

/// An authentication realm (`sstLDAPAuthenticationProvider`, id = its `ou`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmEntry {
    /// The realm id (`ou`), numeric in practice.
    pub uid: String,
    /// `sstDisplayName`; `null` in answers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `sstBelongsToCustomerUID`: users of other customers get 401004 in this realm.
    pub customer: String,
}

/// A user of the internal directory. `Debug` prints the password as `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// The internal uid (what pools and VMs list under `ou=people`).
    pub uid: String,
    /// The login name (compared case-insensitively, as LDAP does).
    pub name: String,
    /// The password (compared exactly).
    pub password: String,
    /// `sstBelongsToCustomerUID`.
    pub customer: String,
    /// Group uids the user is in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Rights of the user's role, `"section.action" = "value"`, e.g.
    /// `"dynamicVM.view" = "all"`, `"persistentVM.view" = "owner"`, `"vmPool.view" = "all"`.
    #[serde(default)]
    pub rights: BTreeMap<String, String>,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("uid", &self.uid)
            .field("name", &self.name)
            .field("password", &REDACTED)
            .field("customer", &self.customer)
            .field("groups", &self.groups)
            .field("rights", &self.rights)
            .finish()
    }
}

impl UserEntry {
    /// The user's right for `section.action`, if any.
    pub fn right(&self, section_action: &str) -> Option<&str> {
        self.rights.get(section_action).map(String::as_str)
    }
}

/// A node (hypervisor host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// `sstNode`, the node's name.
    pub name: String,
    /// The node's `pub` VLAN address, the SPICE host; `0.0.0.0` means "the server's own
    /// address".
    pub spice_ip: String,
}

/// Whether a pool hands out VMs per session or holds fixed VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolType {
    /// `sstVirtualMachinePoolType = dynamic`.
    Dynamic,
    /// `sstVirtualMachinePoolType = persistent`.
    Persistent,
}

/// A VM pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    /// `sstVirtualMachinePool`, the pool's UUID.
    pub uuid: String,
    /// `sstDisplayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The pool type.
    #[serde(rename = "type")]
    pub pool_type: PoolType,
    /// Group uids under the pool's `ou=groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// User uids under the pool's `ou=people`.
    #[serde(default)]
    pub people: Vec<String>,
}

/// A VM's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmType {
    /// `sstVirtualMachineType = dynamic`.
    Dynamic,
    /// `sstVirtualMachineType = persistent`.
    Persistent,
}

impl VmType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VmType::Dynamic => "dynamic",
            VmType::Persistent => "persistent",
        }
    }
}

/// A VM. `Debug` prints the SPICE password as `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmEntry {
    /// `sstVirtualMachine`, the libvirt domain UUID.
    pub uuid: String,
    /// `sstDisplayName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The VM type.
    #[serde(rename = "type")]
    pub vm_type: VmType,
    /// `sstVirtualMachineSubType`: `Desktop`, `Server`, `Golden-Image`, ...
    pub subtype: String,
    /// `sstNode`; must name a node.
    pub node: String,
    /// `sstSpicePort`.
    pub spice_port: u16,
    /// `sstSpicePassword`.
    pub spice_password: String,
    /// The VM profile's group (`windows`, `linux`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `sstVirtualMachinePool`; must name a pool.
    pub pool: String,
    /// User uids under the VM's `ou=people` (for dynamic VMs: who it is assigned to).
    #[serde(default)]
    pub people: Vec<String>,
    /// Group uids under the VM's `ou=groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the libvirt domain is active (persistent VMs report online/offline from it).
    #[serde(default)]
    pub running: bool,
}

impl fmt::Debug for VmEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmEntry")
            .field("uuid", &self.uuid)
            .field("display_name", &self.display_name)
            .field("vm_type", &self.vm_type)
            .field("subtype", &self.subtype)
            .field("node", &self.node)
            .field("spice_port", &self.spice_port)
            .field("spice_password", &REDACTED)
            .field("os", &self.os)
            .field("pool", &self.pool)
            .field("people", &self.people)
            .field("groups", &self.groups)
            .field("running", &self.running)
            .finish()
    }
}

/// An FC4School mapping of a workstation's MAC address to a dynamic VM. FC4School is not
/// public; this shape is a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingEntry {
    /// The workstation's MAC address (matched case-insensitively).
    pub mac: String,
    /// The mapped VM's UUID.
    pub vm: String,
}

/// One line of the server's ARP table (`arp -an <client address>`): how the server finds the
/// caller's MAC address when the URL carries none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpEntry {
    /// The client's IP address as the server sees it.
    pub ip: String,
    /// Its MAC address.
    pub mac: String,
}

/// The in-memory directory: realms, users, nodes, pools, VMs, FC4School mappings and the
/// server's ARP table. Order matters where LDAP order shows in answers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Directory {
    /// Authentication realms.
    pub realms: Vec<RealmEntry>,
    /// Users.
    pub users: Vec<UserEntry>,
    /// FC4School's shared thin-client account (login name), if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynvmuser: Option<String>,
    /// Nodes.
    pub nodes: Vec<NodeEntry>,
    /// VM pools.
    pub pools: Vec<PoolEntry>,
    /// VMs.
    pub vms: Vec<VmEntry>,
    /// MAC-to-VM mappings.
    pub mappings: Vec<MappingEntry>,
    /// The server's ARP table.
    pub arp: Vec<ArpEntry>,
}

impl Directory {
    /// Checks references: every VM's node and pool exist, every mapping's VM exists, uids
    /// and UUIDs are unique and not empty.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |msg: String| Err(SimError::Fixture(msg));
        let mut seen = std::collections::BTreeSet::new();
        for realm in &self.realms {
            if realm.uid.is_empty() || !seen.insert(("realm", realm.uid.clone())) {
                return bad(format!("realm uid {:?} is empty or repeated", realm.uid));
            }
        }
        for user in &self.users {
            if user.uid.is_empty() || !seen.insert(("user", user.uid.clone())) {
                return bad(format!("user uid {:?} is empty or repeated", user.uid));
            }
            if !seen.insert(("name", user.name.to_lowercase())) {
                return bad(format!("user name {:?} is repeated", user.name));
            }
        }
        for node in &self.nodes {
            if !seen.insert(("node", node.name.clone())) {
                return bad(format!("node {:?} is repeated", node.name));
            }
        }
        for pool in &self.pools {
            if pool.uuid.is_empty() || !seen.insert(("pool", pool.uuid.to_lowercase())) {
                return bad(format!("pool uuid {:?} is empty or repeated", pool.uuid));
            }
        }
        for vm in &self.vms {
            if vm.uuid.is_empty() || !seen.insert(("vm", vm.uuid.clone())) {
                return bad(format!("VM uuid {:?} is empty or repeated", vm.uuid));
            }
            if !self.nodes.iter().any(|n| n.name == vm.node) {
                return bad(format!(
                    "VM {} names node {:?}, which is not in nodes",
                    vm.uuid, vm.node
                ));
            }
            if self.pool(&vm.pool).is_none() {
                return bad(format!(
                    "VM {} names pool {:?}, which is not in pools",
                    vm.uuid, vm.pool
                ));
            }
        }
        for mapping in &self.mappings {
            if !self.vms.iter().any(|v| v.uuid == mapping.vm) {
                return bad(format!(
                    "mapping {} names VM {:?}, which is not in vms",
                    mapping.mac, mapping.vm
                ));
            }
        }
        if let Some(name) = &self.dynvmuser {
            if self.user_by_name(name).is_none() {
                return bad(format!("dynvmuser {name:?} is not in users"));
            }
        }
        Ok(())
    }

    /// A pool by UUID (case-insensitive, like an LDAP DN lookup).
    pub fn pool(&self, uuid: &str) -> Option<&PoolEntry> {
        self.pools
            .iter()
            .find(|p| p.uuid.eq_ignore_ascii_case(uuid))
    }

    /// A user by login name (case-insensitive).
    pub fn user_by_name(&self, name: &str) -> Option<&UserEntry> {
        self.users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// A VM by UUID.
    pub fn vm(&self, uuid: &str) -> Option<&VmEntry> {
        self.vms.iter().find(|v| v.uuid == uuid)
    }

    /// The built-in directory (see the crate README for the table).
    pub fn builtin() -> Directory {
        fn rights(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }
        fn user(
            uid: &str,
            name: &str,
            customer: &str,
            groups: &[&str],
            r: &[(&str, &str)],
        ) -> UserEntry {
            UserEntry {
                uid: uid.into(),
                name: name.into(),
                password: format!("{name}-pw"),
                customer: customer.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                rights: rights(r),
            }
        }
        #[allow(clippy::too_many_arguments)]
        fn vm(
            uuid: &str,
            name: &str,
            vm_type: VmType,
            subtype: &str,
            node: &str,
            port: u16,
            password: &str,
            os: &str,
            pool: &str,
            people: &[&str],
            running: bool,
        ) -> VmEntry {
            VmEntry {
                uuid: uuid.into(),
                display_name: Some(name.into()),
                vm_type,
                subtype: subtype.into(),
                node: node.into(),
                spice_port: port,
                spice_password: password.into(),
                os: Some(os.into()),
                pool: pool.into(),
                people: people.iter().map(|p| (*p).to_owned()).collect(),
                groups: Vec::new(),
                running,
            }
        }
        let owner = [
            ("dynamicVM.view", "owner"),
            ("persistentVM.view", "owner"),
            ("vmPool.view", "owner"),
        ];
        let all = [
            ("dynamicVM.view", "all"),
            ("persistentVM.view", "all"),
            ("vmPool.view", "all"),
        ];
        use VmType::{Dynamic, Persistent};
        Directory {
            realms: vec![
                RealmEntry {
                    uid: "4000013".into(),
                    display_name: Some("Customer Virtual Machines".into()),
                    customer: "4000001".into(),
                },
                RealmEntry {
                    uid: "4000020".into(),
                    display_name: Some("School Active Directory".into()),
                    customer: "4000002".into(),
                },
            ],
            users: vec![
                user("4000100", "alice", "4000001", &["4000050"], &owner),
                user("4000101", "bob", "4000001", &["4000050"], &owner),
                user("4000102", "teacher", "4000001", &["4000051"], &all),
                user(
                    "4000103",
                    "dynvmuser",
                    "4000001",
                    &[],
                    &[("dynamicVM.view", "owner")],
                ),
                user("4000200", "carol", "4000002", &["4000060"], &owner),
            ],
            dynvmuser: Some("dynvmuser".into()),
            nodes: vec![
                NodeEntry {
                    name: "node-01".into(),
                    spice_ip: "192.0.2.11".into(),
                },
                NodeEntry {
                    name: "node-02".into(),
                    spice_ip: "192.0.2.12".into(),
                },
            ],
            pools: vec![
                PoolEntry {
                    uuid: "57e3bd10-1934-4b4f-3d4c-6e31473bddab".into(),
                    display_name: Some("Windows Exam".into()),
                    pool_type: PoolType::Dynamic,
                    groups: vec!["4000050".into()],
                    people: vec![],
                },
                PoolEntry {
                    uuid: "6a1c2e3f-0000-4000-8000-00000000a002".into(),
                    display_name: Some("Linux Lab".into()),
                    pool_type: PoolType::Dynamic,
                    groups: vec!["4000050".into()],
                    people: vec![],
                },
                PoolEntry {
                    uuid: "6a1c2e3f-0000-4000-8000-00000000a003".into(),
                    display_name: Some("Full Pool".into()),
                    pool_type: PoolType::Dynamic,
                    groups: vec![],
                    people: vec!["4000100".into()],
                },
                PoolEntry {
                    uuid: "6a1c2e3f-0000-4000-8000-00000000a004".into(),
                    display_name: Some("Classroom".into()),
                    pool_type: PoolType::Dynamic,
                    groups: vec![],
                    people: vec!["4000103".into()],
                },
                PoolEntry {
                    uuid: "57501ac5-3a14-41cb-b225-8e787c41505a".into(),
                    display_name: Some("Servers".into()),
                    pool_type: PoolType::Persistent,
                    groups: vec!["4000050".into()],
                    people: vec![],
                },
                PoolEntry {
                    uuid: "57501ac5-3a14-41cb-b225-8e787c4150ff".into(),
                    display_name: Some("Staff".into()),
                    pool_type: PoolType::Persistent,
                    groups: vec!["4000051".into()],
                    people: vec![],
                },
            ],
            vms: vec![
                vm(
                    "7a476dcc-7e27-495b-9dd5-f599b8ecff16",
                    "win-exam-01",
                    Dynamic,
                    "Desktop",
                    "node-01",
                    5901,
                    "Wx7pQ2rT",
                    "windows",
                    "57e3bd10-1934-4b4f-3d4c-6e31473bddab",
                    &[],
                    true,
                ),
                vm(
                    "7a476dcc-7e27-495b-9dd5-f599b8ecff17",
                    "win-exam-02",
                    Dynamic,
                    "Desktop",
                    "node-01",
                    5902,
                    "20170525",
                    "windows",
                    "57e3bd10-1934-4b4f-3d4c-6e31473bddab",
                    &[],
                    true,
                ),
                vm(
                    "7a476dcc-7e27-495b-9dd5-f599b8ecff18",
                    "win-exam-03",
                    Dynamic,
                    "Desktop",
                    "node-02",
                    5903,
                    "Kd93mZq1",
                    "windows",
                    "57e3bd10-1934-4b4f-3d4c-6e31473bddab",
                    &[],
                    false,
                ),
                vm(
                    "7a476dcc-7e27-495b-9dd5-f599b8ecff00",
                    "win-golden",
                    Dynamic,
                    "Golden-Image",
                    "node-01",
                    5900,
                    "Gold3nPw",
                    "windows",
                    "57e3bd10-1934-4b4f-3d4c-6e31473bddab",
                    &[],
                    false,
                ),
                vm(
                    "8b000000-0000-4000-8000-00000000b001",
                    "linux-lab-01",
                    Dynamic,
                    "Desktop",
                    "node-02",
                    5911,
                    "Lx01pass",
                    "linux",
                    "6a1c2e3f-0000-4000-8000-00000000a002",
                    &["4000101"],
                    true,
                ),
                vm(
                    "8b000000-0000-4000-8000-00000000b002",
                    "linux-lab-02",
                    Dynamic,
                    "Desktop",
                    "node-02",
                    5912,
                    "Lx02pass",
                    "linux",
                    "6a1c2e3f-0000-4000-8000-00000000a002",
                    &[],
                    true,
                ),
                vm(
                    "8b000000-0000-4000-8000-00000000b003",
                    "full-01",
                    Dynamic,
                    "Desktop",
                    "node-01",
                    5921,
                    "Fu01pass",
                    "linux",
                    "6a1c2e3f-0000-4000-8000-00000000a003",
                    &["4000102"],
                    true,
                ),
                vm(
                    "8b000000-0000-4000-8000-00000000c001",
                    "class-01",
                    Dynamic,
                    "Desktop",
                    "node-01",
                    5931,
                    "Cl01pass",
                    "windows",
                    "6a1c2e3f-0000-4000-8000-00000000a004",
                    &[],
                    true,
                ),
                vm(
                    "8b000000-0000-4000-8000-00000000c002",
                    "class-02",
                    Dynamic,
                    "Desktop",
                    "node-02",
                    5932,
                    "Cl02pass",
                    "windows",
                    "6a1c2e3f-0000-4000-8000-00000000a004",
                    &[],
                    true,
                ),
                vm(
                    "5750786d-045c-4d3c-85c3-4c169aabcc7b",
                    "Web Server",
                    Persistent,
                    "Server",
                    "node-01",
                    5941,
                    "We8bSrv1",
                    "linux",
                    "57501ac5-3a14-41cb-b225-8e787c41505a",
                    &[],
                    true,
                ),
                vm(
                    "5750786d-045c-4d3c-85c3-4c169aabcc7c",
                    "4711",
                    Persistent,
                    "Server",
                    "node-02",
                    5942,
                    "Db4711pw",
                    "linux",
                    "57501ac5-3a14-41cb-b225-8e787c41505a",
                    &[],
                    false,
                ),
                vm(
                    "5750786d-045c-4d3c-85c3-4c169aabcc7d",
                    "Teacher Desktop",
                    Persistent,
                    "Desktop",
                    "node-01",
                    5943,
                    "TeachPw9",
                    "windows",
                    "57501ac5-3a14-41cb-b225-8e787c4150ff",
                    &["4000102"],
                    true,
                ),
            ],
            mappings: vec![
                MappingEntry {
                    mac: "52:54:00:00:00:01".into(),
                    vm: "8b000000-0000-4000-8000-00000000c001".into(),
                },
                MappingEntry {
                    mac: "52:54:00:00:00:02".into(),
                    vm: "8b000000-0000-4000-8000-00000000c002".into(),
                },
            ],
            arp: vec![ArpEntry {
                ip: "127.0.0.1".into(),
                mac: "52:54:00:00:00:01".into(),
            }],
        }
    }
}

/// Configuration and directory together: what a fixture file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixture {
    /// The configuration switches (missing ones take [`Config::default`]).
    #[serde(default)]
    pub config: Config,
    /// The directory (missing lists are empty).
    #[serde(default)]
    pub directory: Directory,
}

impl Default for Fixture {
    /// The built-in fixture: [`Config::default`] and [`Directory::builtin`].
    fn default() -> Self {
        Fixture {
            config: Config::default(),
            directory: Directory::builtin(),
        }
    }
}

impl Fixture {
    /// Reads a fixture from a `.toml` or `.json` file and validates its directory.
    pub fn from_path(path: &Path) -> Result<Fixture, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Fixture(format!("cannot read {}: {e}", path.display())))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::from_str_with_format(&text, ext)
            .map_err(|e| SimError::Fixture(format!("{}: {e}", path.display())))
    }

    /// Parses fixture text; `format` is `toml` or `json` (case-insensitive).
    pub fn from_str_with_format(text: &str, format: &str) -> Result<Fixture, SimError> {
        let fixture: Fixture = match format.to_ascii_lowercase().as_str() {
            "toml" => toml::from_str(text).map_err(|e| SimError::Fixture(e.to_string()))?,
            "json" => serde_json::from_str(text).map_err(|e| SimError::Fixture(e.to_string()))?,
            other => {
                return Err(SimError::Fixture(format!(
                    "unknown fixture format {other:?}: expected a .toml or .json file"
                )))
            }
        };
        fixture.directory.validate()?;
        Ok(fixture)
    }

    /// The fixture as TOML (e.g. to start a custom file from the built-in one).
    pub fn to_toml(&self) -> Result<String, SimError> {
        toml::to_string_pretty(self).map_err(|e| SimError::Fixture(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_directory_is_valid() {
        Directory::builtin().validate().unwrap();
    }

    #[test]
    fn debug_hides_user_and_spice_passwords() {
        let directory = Directory::builtin();
        let fixture = Fixture {
            config: Config::default(),
            directory: directory.clone(),
        };
        let text = format!("{directory:?} {fixture:?}");
        let secrets = directory
            .users
            .iter()
            .map(|u| &u.password)
            .chain(directory.vms.iter().map(|v| &v.spice_password));
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
        }
        assert!(text.contains("password: \"***\""), "{text}");
        assert!(text.contains("spice_password: \"***\""), "{text}");
        // The rest stays visible for diagnosis.
        assert!(text.contains(&directory.users[0].uid), "{text}");
        assert!(text.contains(&directory.vms[0].uuid), "{text}");
        // The fixture file format still carries them.
        let toml = fixture.to_toml().unwrap();
        assert!(toml.contains(&directory.users[0].password), "{toml}");
    }

    #[test]
    fn fixtures_round_trip_through_toml_and_json() {
        let fixture = Fixture::default();
        let toml_text = fixture.to_toml().unwrap();
        assert_eq!(
            Fixture::from_str_with_format(&toml_text, "toml").unwrap(),
            fixture
        );
        let json_text = serde_json::to_string(&fixture).unwrap();
        assert_eq!(
            Fixture::from_str_with_format(&json_text, "JSON").unwrap(),
            fixture
        );
        assert!(Fixture::from_str_with_format(&json_text, "yaml").is_err());
    }

    #[test]
    fn php_config_names_are_read() {
        let f = Fixture::from_str_with_format(
            "[config]\nenable = false\ndefaultRealm = \"42\"\nmacByParameter = true\n",
            "toml",
        )
        .unwrap();
        assert!(!f.config.enable);
        assert_eq!(f.config.default_realm, "42");
        assert!(f.config.mac_by_parameter);
        assert!(
            f.config.school_module,
            "missing switches keep their defaults"
        );
        assert!(f.directory.users.is_empty());
    }

    #[test]
    fn readme_fixture_example_loads() {
        let readme = include_str!("../README.md");
        // The first TOML block that is not the `[dependencies]` line.
        let example = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| &b[..b.find("```").expect("closed block")])
            .find(|b| !b.starts_with("[dependencies]"))
            .expect("README has a TOML fixture example");
        let f = Fixture::from_str_with_format(example, "toml").unwrap();
        assert!(f.config.mac_by_parameter);
        assert_eq!(f.directory.vms.len(), 1);
        assert_eq!(f.directory.dynvmuser.as_deref(), Some("student1"));
        assert_eq!(f.directory.users[0].right("dynamicVM.view"), Some("owner"));
    }

    #[test]
    fn broken_references_are_refused() {
        let mut d = Directory::builtin();
        d.vms[0].node = "node-99".into();
        let err = d.validate().unwrap_err().to_string();
        assert!(err.contains("node-99"), "{err}");
        let mut d = Directory::builtin();
        d.mappings[0].vm = "nope".into();
        assert!(d.validate().is_err());
    }
}
