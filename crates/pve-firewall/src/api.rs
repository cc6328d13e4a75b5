//! The firewall primitives: one method per API call, at every [`Scope`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use pve_auth::{Params, PveClient};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::rule::{Rule, RuleEntry};
use crate::scope::{cidr_segment, Scope};
use crate::spec::{AliasName, Cidr, GroupName, IpSetName};

/// Default policy of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `ACCEPT`.
    Accept,
    /// `DROP`.
    Drop,
    /// `REJECT`.
    Reject,
}

impl Policy {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
            Policy::Reject => "REJECT",
        }
    }
}

impl FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ACCEPT" => Ok(Policy::Accept),
            "DROP" => Ok(Policy::Drop),
            "REJECT" => Ok(Policy::Reject),
            _ => Err(Error::invalid("policy", s, "allowed: ACCEPT, DROP, REJECT")),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Firewall options as a GET returns them: only explicitly set keys, plus the digest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    /// Digest of the file; pass it back in [`OptionsUpdate::digest`].
    pub digest: Option<String>,
    /// Every explicitly set key with its raw value.
    pub values: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for Options {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut values =
            Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default();
        let digest = match values.remove("digest") {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(Self { digest, values })
    }
}

impl Options {
    /// The value of `key` as text (`None` when not explicitly set).
    pub fn get(&self, key: &str) -> Option<String> {
        match self.values.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(u8::from(*b).to_string()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// `enable` as a number (the cluster stores an integer: 1, or a timestamp after the
    /// anti-lockout `enable=2` step), `None` when unset.
    pub fn enable(&self) -> Option<u64> {
        let v = self.get("enable")?;
        v.parse().ok().or(match v.as_str() {
            "true" | "on" | "yes" => Some(1),
            _ => Some(0),
        })
    }

    /// `true` when `enable` is set to a non-zero value.
    pub fn enabled(&self) -> bool {
        self.enable().is_some_and(|e| e > 0)
    }

    /// A boolean option (`None` when unset).
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key)
            .map(|v| matches!(v.as_str(), "1" | "true" | "on" | "yes"))
    }

    /// A policy option (`policy_in`, `policy_out`), `None` when unset or unknown.
    pub fn policy(&self, key: &str) -> Option<Policy> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// A change of firewall options (`PUT …/options`).
///
/// ```
/// use pve_firewall::{OptionsUpdate, Policy};
/// let u = OptionsUpdate::new().enable(true).dhcp(true).policy_in(Policy::Accept).delete("ndp").digest("ab12");
/// assert_eq!(u.to_params().to_query(), "enable=1&dhcp=1&policy_in=ACCEPT&delete=ndp&digest=ab12");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct OptionsUpdate {
    params: Params,
    delete: Vec<String>,
}

impl OptionsUpdate {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets any key (checked by the server; prefer the typed setters).
    pub fn set(mut self, key: &str, value: impl pve_auth::ParamValue) -> Self {
        self.delete.retain(|k| k != key);
        self.params.insert(key, value);
        self
    }

    /// Removes a key, restoring its default.
    pub fn delete(mut self, key: &str) -> Self {
        self.params.remove(key);
        if !self.delete.iter().any(|k| k == key) {
            self.delete.push(key.to_owned());
        }
        self
    }

    /// `enable`.
    pub fn enable(self, on: bool) -> Self {
        self.set("enable", on)
    }

    /// Guest option `dhcp`.
    pub fn dhcp(self, on: bool) -> Self {
        self.set("dhcp", on)
    }

    /// `policy_in`.
    pub fn policy_in(self, p: Policy) -> Self {
        self.set("policy_in", p.as_str())
    }

    /// `policy_out`.
    pub fn policy_out(self, p: Policy) -> Self {
        self.set("policy_out", p.as_str())
    }

    /// Refuse the change if the options changed since they were read with this digest.
    pub fn digest(mut self, digest: &str) -> Self {
        self.params.insert("digest", digest);
        self
    }

    /// `true` when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.params.iter().all(|(k, _)| k == "digest")
    }

    /// The request parameters.
    pub fn to_params(&self) -> Params {
        let mut p = Params::new();
        for (k, v) in self.params.iter().filter(|(k, _)| *k != "digest") {
            p.insert(k, v);
        }
        if !self.delete.is_empty() {
            p.insert("delete", self.delete.join(","));
        }
        if let Some(d) = self.params.get("digest") {
            p.insert("digest", d);
        }
        p
    }
}

/// An IP set in a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpSetInfo {
    /// The name.
    pub name: String,
    /// The comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// Digest of the set list.
    #[serde(default)]
    pub digest: Option<String>,
}

/// One entry of an IP set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpSetEntry {
    /// IP, CIDR (host bits cleaned) or alias name.
    pub cidr: String,
    /// The comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// `!cidr`: excluded from the set.
    #[serde(default, deserialize_with = "pve_auth::perl::bool")]
    pub nomatch: bool,
    /// Digest of the set's entries.
    #[serde(default)]
    pub digest: Option<String>,
}

impl IpSetEntry {
    /// The entry as a network, if it is an address (not an alias).
    pub fn net(&self) -> Option<Cidr> {
        self.cidr.parse().ok()
    }
}

/// A security group in a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupInfo {
    /// The name.
    pub group: String,
    /// The comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// Digest of the group list.
    #[serde(default)]
    pub digest: Option<String>,
}

/// An alias.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AliasEntry {
    /// The name (stored lower-case).
    pub name: String,
    /// The address or network.
    pub cidr: String,
    /// The comment.
    #[serde(default, deserialize_with = "pve_auth::perl::opt_string")]
    pub comment: Option<String>,
    /// Digest of the alias list.
    #[serde(default)]
    pub digest: Option<String>,
}

/// The firewall API: cheap to clone, shares the [`PveClient`].
///
/// ```no_run
/// use pve_firewall::{Firewall, Rule, Scope};
/// # async fn demo(client: pve_auth::PveClient) -> pve_firewall::Result<()> {
/// let fw = Firewall::new(client);
/// let opts = fw.options(&Scope::Cluster).await?;
/// println!("cluster firewall enabled: {}", opts.enabled());
/// fw.create_rule(&Scope::Cluster, &Rule::accept_in().proto("tcp".parse()?).dport("8006".parse()?)).await?;
/// for r in fw.rules(&Scope::Cluster).await? {
///     println!("{} {} {}", r.pos, r.kind, r.action);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Firewall {
    client: PveClient,
}

fn with_digest(mut p: Params, digest: Option<&str>) -> Params {
    if let Some(d) = digest {
        p.insert("digest", d);
    }
    p
}

impl Firewall {
    /// Wraps a client.
    pub fn new(client: PveClient) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &PveClient {
        &self.client
    }

    /// `GET …/options`.
    pub async fn options(&self, scope: &Scope) -> Result<Options> {
        Ok(self
            .client
            .get(&scope.options_path()?, &Params::new())
            .await?)
    }

    /// `PUT …/options`. An empty update sends nothing.
    pub async fn set_options(&self, scope: &Scope, update: &OptionsUpdate) -> Result<()> {
        if update.is_empty() {
            return Ok(());
        }
        let _: serde_json::Value = self
            .client
            .put(&scope.options_path()?, &update.to_params())
            .await?;
        Ok(())
    }

    /// `GET …/rules` (or the group's rules), ordered by position.
    pub async fn rules(&self, scope: &Scope) -> Result<Vec<RuleEntry>> {
        let mut rules: Vec<RuleEntry> = self
            .client
            .get(&scope.rules_path()?, &Params::new())
            .await?;
        rules.sort_by_key(|r| r.pos);
        Ok(rules)
    }

    /// `GET …/rules/{pos}`.
    pub async fn rule(&self, scope: &Scope, pos: u32) -> Result<RuleEntry> {
        Ok(self
            .client
            .get(&scope.rule_path(pos)?, &Params::new())
            .await?)
    }

    /// `POST …/rules`: the rule is checked for the scope's level, then inserted **at
    /// position 0** (PVE ignores `pos` on create; move it afterwards if needed).
    pub async fn create_rule(&self, scope: &Scope, rule: &Rule) -> Result<()> {
        rule.check(scope.level())?;
        let _: serde_json::Value = self
            .client
            .post(&scope.rules_path()?, &rule.to_params())
            .await?;
        Ok(())
    }

    /// `PUT …/rules/{pos}`: replaces the rule at `pos` by `rule` (fields `rule` leaves unset
    /// are deleted). Pass the list's digest so a concurrent change is refused.
    pub async fn update_rule(
        &self,
        scope: &Scope,
        pos: u32,
        rule: &Rule,
        digest: Option<&str>,
    ) -> Result<()> {
        rule.check(scope.level())?;
        let p = with_digest(rule.to_replace_params(), digest);
        let _: serde_json::Value = self.client.put(&scope.rule_path(pos)?, &p).await?;
        Ok(())
    }

    /// `PUT …/rules/{pos}` with `moveto`: moves a rule to position `to`.
    pub async fn move_rule(
        &self,
        scope: &Scope,
        pos: u32,
        to: u32,
        digest: Option<&str>,
    ) -> Result<()> {
        let p = with_digest(Params::new().with("moveto", to), digest);
        let _: serde_json::Value = self.client.put(&scope.rule_path(pos)?, &p).await?;
        Ok(())
    }

    /// `DELETE …/rules/{pos}` (digest in the query string, as PVE refuses DELETE bodies).
    pub async fn delete_rule(&self, scope: &Scope, pos: u32, digest: Option<&str>) -> Result<()> {
        let p = with_digest(Params::new(), digest);
        let _: serde_json::Value = self.client.delete(&scope.rule_path(pos)?, &p).await?;
        Ok(())
    }

    /// `GET …/ipset`.
    pub async fn ipsets(&self, scope: &Scope) -> Result<Vec<IpSetInfo>> {
        Ok(self
            .client
            .get(&scope.ipsets_path()?, &Params::new())
            .await?)
    }

    /// `POST …/ipset`: creates an empty set.
    pub async fn create_ipset(
        &self,
        scope: &Scope,
        name: &IpSetName,
        comment: Option<&str>,
    ) -> Result<()> {
        let p = Params::new()
            .with("name", name.as_str())
            .opt("comment", comment);
        let _: serde_json::Value = self.client.post(&scope.ipsets_path()?, &p).await?;
        Ok(())
    }

    /// `DELETE …/ipset/{name}`; without `force` PVE refuses a non-empty set.
    pub async fn delete_ipset(&self, scope: &Scope, name: &IpSetName, force: bool) -> Result<()> {
        let p = Params::new().opt("force", force.then_some(true));
        let _: serde_json::Value = self.client.delete(&scope.ipset_path(name)?, &p).await?;
        Ok(())
    }

    /// `GET …/ipset/{name}`: the entries.
    pub async fn ipset_entries(&self, scope: &Scope, name: &IpSetName) -> Result<Vec<IpSetEntry>> {
        Ok(self
            .client
            .get(&scope.ipset_path(name)?, &Params::new())
            .await?)
    }

    /// `POST …/ipset/{name}`: adds an address or network (`nomatch` excludes it).
    pub async fn add_ipset_entry(
        &self,
        scope: &Scope,
        name: &IpSetName,
        cidr: &Cidr,
        nomatch: bool,
        comment: Option<&str>,
    ) -> Result<()> {
        if cidr.prefix() == 0 {
            return Err(Error::invalid(
                "cidr",
                cidr.to_string(),
                "PVE forbids /0 in IP sets",
            ));
        }
        let p = Params::new()
            .with("cidr", cidr.to_string())
            .opt("nomatch", nomatch.then_some(true))
            .opt("comment", comment);
        let _: serde_json::Value = self.client.post(&scope.ipset_path(name)?, &p).await?;
        Ok(())
    }

    /// `PUT …/ipset/{name}/{cidr}`: changes an entry's comment and `nomatch` flag.
    pub async fn update_ipset_entry(
        &self,
        scope: &Scope,
        name: &IpSetName,
        cidr: &str,
        nomatch: bool,
        comment: Option<&str>,
        digest: Option<&str>,
    ) -> Result<()> {
        let p = with_digest(
            Params::new()
                .with("nomatch", nomatch)
                .opt("comment", comment),
            digest,
        );
        let _: serde_json::Value = self
            .client
            .put(&scope.ipset_entry_path(name, cidr)?, &p)
            .await?;
        Ok(())
    }

    /// `DELETE …/ipset/{name}/{cidr}`; `cidr` as listed (an address, network or alias).
    pub async fn delete_ipset_entry(
        &self,
        scope: &Scope,
        name: &IpSetName,
        cidr: &str,
        digest: Option<&str>,
    ) -> Result<()> {
        let seg = cidr
            .parse::<Cidr>()
            .map(|c| cidr_segment(&c))
            .unwrap_or_else(|_| cidr.to_owned());
        let p = with_digest(Params::new(), digest);
        let _: serde_json::Value = self
            .client
            .delete(&scope.ipset_entry_path(name, &seg)?, &p)
            .await?;
        Ok(())
    }

    /// `GET /cluster/firewall/groups`.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        Ok(self
            .client
            .get("/cluster/firewall/groups", &Params::new())
            .await?)
    }

    /// `POST /cluster/firewall/groups`: creates an empty group.
    pub async fn create_group(&self, name: &GroupName, comment: Option<&str>) -> Result<()> {
        let p = Params::new()
            .with("group", name.as_str())
            .opt("comment", comment);
        let _: serde_json::Value = self.client.post("/cluster/firewall/groups", &p).await?;
        Ok(())
    }

    /// Changes a group's comment (`POST /cluster/firewall/groups` with `rename` = `group`,
    /// as the API documents for comment updates).
    pub async fn set_group_comment(
        &self,
        name: &GroupName,
        comment: &str,
        digest: Option<&str>,
    ) -> Result<()> {
        let p = with_digest(
            Params::new()
                .with("group", name.as_str())
                .with("rename", name.as_str())
                .with("comment", comment),
            digest,
        );
        let _: serde_json::Value = self.client.post("/cluster/firewall/groups", &p).await?;
        Ok(())
    }

    /// `DELETE /cluster/firewall/groups/{group}`; PVE refuses while the group has rules.
    pub async fn delete_group(&self, name: &GroupName) -> Result<()> {
        let path = Scope::Group(name.clone()).rules_path()?;
        let _: serde_json::Value = self.client.delete(&path, &Params::new()).await?;
        Ok(())
    }

    /// `GET …/aliases`.
    pub async fn aliases(&self, scope: &Scope) -> Result<Vec<AliasEntry>> {
        Ok(self
            .client
            .get(&scope.aliases_path()?, &Params::new())
            .await?)
    }

    /// `POST …/aliases`.
    pub async fn create_alias(
        &self,
        scope: &Scope,
        name: &AliasName,
        cidr: &Cidr,
        comment: Option<&str>,
    ) -> Result<()> {
        let p = Params::new()
            .with("name", name.as_str())
            .with("cidr", cidr.to_string())
            .opt("comment", comment);
        let _: serde_json::Value = self.client.post(&scope.aliases_path()?, &p).await?;
        Ok(())
    }

    /// `PUT …/aliases/{name}`: changes address and comment.
    pub async fn update_alias(
        &self,
        scope: &Scope,
        name: &AliasName,
        cidr: &Cidr,
        comment: Option<&str>,
        digest: Option<&str>,
    ) -> Result<()> {
        let p = with_digest(
            Params::new()
                .with("cidr", cidr.to_string())
                .opt("comment", comment),
            digest,
        );
        let _: serde_json::Value = self.client.put(&scope.alias_path(name)?, &p).await?;
        Ok(())
    }

    /// `DELETE …/aliases/{name}`.
    pub async fn delete_alias(
        &self,
        scope: &Scope,
        name: &AliasName,
        digest: Option<&str>,
    ) -> Result<()> {
        let p = with_digest(Params::new(), digest);
        let _: serde_json::Value = self.client.delete(&scope.alias_path(name)?, &p).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_read_loosely() {
        let o: Options =
            serde_json::from_value(json!({"digest":"d1","enable":"1","policy_in":"DROP","dhcp":0}))
                .unwrap();
        assert_eq!(o.digest.as_deref(), Some("d1"));
        assert!(o.enabled());
        assert_eq!(o.policy("policy_in"), Some(Policy::Drop));
        assert_eq!(o.flag("dhcp"), Some(false));
        assert_eq!(o.flag("ndp"), None);
        let o: Options = serde_json::from_value(json!({"enable": 1_700_000_000u64})).unwrap();
        assert_eq!(o.enable(), Some(1_700_000_000));
        let o: Options = serde_json::from_value(json!(null)).unwrap();
        assert!(!o.enabled() && o.values.is_empty());
    }

    #[test]
    fn updates_set_delete_and_digest() {
        let u = OptionsUpdate::new().delete("enable").enable(true);
        assert_eq!(u.to_params().to_query(), "enable=1");
        let u = OptionsUpdate::new()
            .enable(true)
            .delete("enable")
            .delete("enable");
        assert_eq!(u.to_params().to_query(), "delete=enable");
        assert!(OptionsUpdate::new().digest("x").is_empty());
        assert!(!OptionsUpdate::new().delete("dhcp").is_empty());
    }
}
