//! The `netX` property string of QEMU and LXC guests (reference §4.6, §5).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// QEMU NIC models; in `net0` the model key carries the MAC (`virtio=BC:24:11:…`).
const QEMU_MODELS: &[&str] = &[
    "virtio",
    "e1000",
    "e1000e",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "vmxnet3",
    "rtl8139",
    "ne2k_pci",
    "ne2k_isa",
    "pcnet",
    "i82551",
    "i82557b",
    "i82559er",
];

/// One `netX` value, parsed into its `key=value` entries, keeping unknown keys and their
/// order so that writing it back changes only what was changed.
///
/// QEMU: `virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1` (the model may also stand alone,
/// `virtio,bridge=vmbr0`, and then PVE picks a MAC). LXC:
/// `name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:…,ip=dhcp,type=veth`.
///
/// ```
/// use pve_vm::NetDevice;
/// let mut nic: NetDevice = "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=10".parse().unwrap();
/// assert_eq!(nic.mac(), Some("BC:24:11:2E:C5:4A"));
/// assert!(!nic.firewall());
/// nic.set_firewall(true);
/// assert_eq!(nic.to_string(), "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=10,firewall=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    entries: Vec<(String, Option<String>)>,
}

impl NetDevice {
    /// Parses a property string.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidInput {
            what: format!("network device {s:?}"),
            why,
        };
        if s.trim().is_empty() {
            return Err(bad("it is empty".to_owned()));
        }
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        for part in s.split(',') {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
                None => (part.trim(), None),
            };
            if key.is_empty() {
                return Err(bad(format!("entry {part:?} has no key")));
            }
            if entries.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("key {key:?} appears twice")));
            }
            if value.is_none() && !QEMU_MODELS.contains(&key) {
                return Err(bad(format!(
                    "entry {key:?} has no value (only a QEMU model may stand alone)"
                )));
            }
            entries.push((key.to_owned(), value));
        }
        Ok(Self { entries })
    }

    /// `true` for an LXC NIC (it has `name=` or `hwaddr=`), `false` for QEMU.
    pub fn is_lxc(&self) -> bool {
        self.get("name").is_some() || self.get("hwaddr").is_some()
    }

    /// The QEMU model (`virtio`, `e1000`, …), `None` for LXC NICs.
    pub fn model(&self) -> Option<&str> {
        self.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| QEMU_MODELS.contains(k))
    }

    /// The MAC address: the model's value (QEMU), `macaddr` (QEMU long form) or `hwaddr`
    /// (LXC).
    pub fn mac(&self) -> Option<&str> {
        if let Some(model) = self.model() {
            if let Some(mac) = self.get(model) {
                return Some(mac);
            }
        }
        self.get("macaddr").or_else(|| self.get("hwaddr"))
    }

    /// The bridge the NIC is plugged into.
    pub fn bridge(&self) -> Option<&str> {
        self.get("bridge")
    }

    /// `firewall=1`: traffic of this NIC goes through the guest firewall.
    pub fn firewall(&self) -> bool {
        self.flag("firewall")
    }

    /// Sets `firewall=1` or `firewall=0` (in place, or appended).
    pub fn set_firewall(&mut self, on: bool) {
        self.set("firewall", if on { "1" } else { "0" });
    }

    /// `link_down=1`: the virtual cable is pulled.
    pub fn link_down(&self) -> bool {
        self.flag("link_down")
    }

    /// Sets `link_down=1` or removes it.
    pub fn set_link_down(&mut self, down: bool) {
        if down {
            self.set("link_down", "1");
        } else {
            self.remove("link_down");
        }
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "on" | "yes" | "true"))
    }

    /// The value of `key` (`None` when absent or a bare model without MAC).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Sets `key` in place, or appends it.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = Some(value.to_owned()),
            None => self.entries.push((key.to_owned(), Some(value.to_owned()))),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        self.entries.remove(pos).1
    }

    /// Drops the MAC address (the QEMU model's value, `macaddr` or `hwaddr`): sent this way,
    /// PVE generates a new one, as clone does. For a guest that never ran this saves
    /// reading its config just to send its MAC back.
    pub fn without_mac(mut self) -> Self {
        if let Some(model) = self.model().map(str::to_owned) {
            if let Some(entry) = self.entries.iter_mut().find(|(k, _)| *k == model) {
                entry.1 = None;
            }
        }
        self.remove("macaddr");
        self.remove("hwaddr");
        self
    }

    /// The entries in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

impl fmt::Display for NetDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match v {
                Some(v) => write!(f, "{k}={v}")?,
                None => f.write_str(k)?,
            }
        }
        Ok(())
    }
}

impl FromStr for NetDevice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        NetDevice::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_mac_leaves_the_rest() {
        let q = NetDevice::parse("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=0").unwrap();
        assert_eq!(
            q.without_mac().to_string(),
            "virtio,bridge=vmbr0,firewall=0"
        );
        let l =
            NetDevice::parse("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:02,ip=dhcp").unwrap();
        assert_eq!(
            l.without_mac().to_string(),
            "name=eth0,bridge=vmbr0,ip=dhcp"
        );
    }

    #[test]
    fn qemu_round_trip_keeps_order_and_unknown_keys() {
        let s = "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=10,queues=4,x-new=abc";
        let nic = NetDevice::parse(s).unwrap();
        assert_eq!(nic.to_string(), s);
        assert_eq!(nic.model(), Some("virtio"));
        assert_eq!(nic.mac(), Some("BC:24:11:2E:C5:4A"));
        assert_eq!(nic.bridge(), Some("vmbr0"));
        assert!(nic.firewall() && !nic.is_lxc() && !nic.link_down());
        assert_eq!(nic.get("x-new"), Some("abc"));
    }

    #[test]
    fn qemu_bare_model_and_firewall_toggle() {
        let mut nic = NetDevice::parse("e1000,bridge=vmbr1").unwrap();
        assert_eq!(nic.model(), Some("e1000"));
        assert_eq!(nic.mac(), None);
        nic.set_firewall(true);
        assert_eq!(nic.to_string(), "e1000,bridge=vmbr1,firewall=1");
        nic.set_firewall(false);
        assert_eq!(nic.to_string(), "e1000,bridge=vmbr1,firewall=0");
        nic.set_link_down(true);
        assert!(nic.link_down());
        nic.set_link_down(false);
        assert_eq!(nic.to_string(), "e1000,bridge=vmbr1,firewall=0");
    }

    #[test]
    fn lxc_round_trip() {
        let s = "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth";
        let mut nic = NetDevice::parse(s).unwrap();
        assert!(nic.is_lxc());
        assert_eq!(nic.model(), None);
        assert_eq!(nic.mac(), Some("BC:24:11:AA:BB:CC"));
        assert_eq!(nic.to_string(), s);
        nic.set_firewall(false);
        assert_eq!(
            nic.to_string(),
            "name=eth0,bridge=vmbr0,firewall=0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth"
        );
    }

    #[test]
    fn rejects_malformed() {
        for (bad, needle) in [
            ("", "empty"),
            ("virtio=X,,bridge=vmbr0", "no key"),
            ("bridge=a,bridge=b", "twice"),
            ("bridge", "no value"),
        ] {
            let e = NetDevice::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
