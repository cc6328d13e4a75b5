//! HTTP wiring of the firewall model: every `…/firewall/…` endpoint of the extract is
//! handed to [`crate::firewall::Firewall::handle`] with its scope and the decoded path
//! segments after `firewall/`.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::error::ApiResult;
use crate::firewall::Scope;
use crate::guest::Kind;
use crate::routing::Req;
use crate::state::Shared;

/// Is this template a firewall endpoint?
pub(crate) fn is_firewall(template: &str) -> bool {
    template.contains("/firewall/")
}

/// Handle a firewall request.
pub(crate) fn handle(sh: &Shared, r: &Req<'_>) -> ApiResult<Value> {
    let rest: Vec<String> = r
        .path
        .split_once("/firewall/")
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let rest_refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let mut st = sh.lock();
    let scope = if r.template.starts_with("/cluster/") {
        Scope::Cluster
    } else if r.template.starts_with("/nodes/{node}/firewall/") {
        Scope::Node(r.node().to_owned())
    } else {
        let kind = if r.template.starts_with("/nodes/{node}/lxc/") {
            Kind::Lxc
        } else {
            Kind::Qemu
        };
        // The guest must live on the node named in the path.
        st.guest(kind, r.node(), r.vmid())?;
        Scope::Guest(r.vmid())
    };
    st.firewall.handle(&scope, r.method, &rest_refs, r.params)
}
