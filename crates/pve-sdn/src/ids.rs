//! Checked identifiers of SDN objects.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// PVE's rule for zone and vnet ids (`pve-sdn-zone-id`, `pve-sdn-vnet-id`,
/// `proxmox/pve-network` `VnetPlugin.pm`): letters and digits, starting with a letter,
/// 2 to 8 characters.
fn check_id(what: &'static str, s: &str) -> Result<()> {
    let ok = (2..=8).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            s,
            "2-8 letters or digits, starting with a letter (PVE's limit: put long names in \
             the alias)",
        ))
    }
}

macro_rules! sdn_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against PVE's rule.
            pub fn new(s: impl Into<String>) -> Result<Self> {
                let s = s.into();
                check_id($what, &s)?;
                Ok(Self(s))
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

        impl pve_auth::ParamValue for $name {
            fn to_param(&self) -> String {
                self.0.clone()
            }
        }

        // Lenient: what the server lists is taken as it is (an older or newer PVE may
        // have allowed other ids); only what this crate sends is checked.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok(Self(pve_auth::perl::string(d)?))
            }
        }
    };
}

sdn_id!(
    /// A zone id (`zone` of `/cluster/sdn/zones`): 2-8 letters or digits, starting with a
    /// letter.
    ZoneId,
    "zone id"
);
sdn_id!(
    /// A vnet id (`vnet` of `/cluster/sdn/vnets`): 2-8 letters or digits, starting with a
    /// letter. It is also the name of the bridge guests' NICs are plugged into.
    VnetId,
    "vnet id"
);

/// An IPv4 subnet in CIDR form, network address with host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix`, refused when `prefix` > 32 or host bits are set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        if prefix > 32 || addr.to_bits() & host != 0 {
            return Err(Error::invalid(
                "subnet",
                format!("{addr}/{prefix}"),
                "a network address with its host bits zero and a prefix of at most 32",
            ));
        }
        Ok(Self { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The `n`-th address of the subnet (`.10` of a /24 is `host(10)`).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits().wrapping_add(n))
    }

    /// PVE's id of this subnet in `zone`: `<zone>-<address>-<prefix>`.
    pub fn subnet_id(&self, zone: &ZoneId) -> String {
        format!("{zone}-{}-{}", self.addr, self.prefix)
    }

    /// Reads the subnet of a PVE subnet id `<zone>-<address>-<prefix>`.
    pub fn from_subnet_id(id: &str) -> Option<(String, Cidr)> {
        let mut parts = id.rsplitn(3, '-');
        let prefix = parts.next()?.parse().ok()?;
        let addr = parts.next()?.parse().ok()?;
        let zone = parts.next()?;
        Some((zone.to_owned(), Cidr::new(addr, prefix).ok()?))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("subnet", s, "an IPv4 network like 10.100.3.0/24");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        Cidr::new(a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_pve_rules() {
        assert!(VnetId::new("vk3x0012").is_ok());
        assert!(VnetId::new("vk3x00123").is_err());
        assert!(VnetId::new("1abc").is_err());
        assert!(VnetId::new("a-b").is_err());
        assert!(VnetId::new("a").is_err());
        assert!(ZoneId::new("zlab").is_ok());
        let e = ZoneId::new("zone_1").unwrap_err().to_string();
        assert!(e.contains("zone id") && e.contains("zone_1"), "{e}");
    }

    #[test]
    fn subnet_ids_are_zone_address_prefix() {
        let c: Cidr = "10.100.3.0/24".parse().unwrap();
        let z = ZoneId::new("zlab").unwrap();
        assert_eq!(c.subnet_id(&z), "zlab-10.100.3.0-24");
        assert_eq!(
            Cidr::from_subnet_id("zlab-10.100.3.0-24"),
            Some(("zlab".to_owned(), c))
        );
        assert_eq!(Cidr::from_subnet_id("10.100.3.0-24"), None);
        assert_eq!(c.host(10).to_string(), "10.100.3.10");
        assert!("10.100.3.1/24".parse::<Cidr>().is_err());
        assert!("10.100.3.0/33".parse::<Cidr>().is_err());
    }
}
