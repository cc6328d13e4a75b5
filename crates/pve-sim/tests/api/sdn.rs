//! SDN over HTTP: zones, vnets and subnets stay pending until one apply, the global
//! lock token, pve-network's naming rules and error texts, teardown order.

use reqwest::Method;
use serde_json::Value;

use crate::common::Api;

const ZONES: &str = "/cluster/sdn/zones";
const VNETS: &str = "/cluster/sdn/vnets";

fn ids(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o[key].as_str().unwrap().to_owned())
        .collect()
}

async fn lab(api: &Api, token: Option<&str>) {
    let t = token.unwrap_or("");
    let with = |mut p: Vec<(&'static str, String)>| {
        if !t.is_empty() {
            p.push(("lock-token", t.to_owned()));
        }
        p
    };
    for (path, params) in [
        (
            ZONES.to_owned(),
            with(vec![
                ("zone", "zlab".into()),
                ("type", "simple".into()),
                ("dhcp", "dnsmasq".into()),
                ("ipam", "pve".into()),
            ]),
        ),
        (
            VNETS.to_owned(),
            with(vec![
                ("vnet", "s01".into()),
                ("zone", "zlab".into()),
                ("alias", "student 01".into()),
            ]),
        ),
        (
            VNETS.to_owned(),
            with(vec![("vnet", "s02".into()), ("zone", "zlab".into())]),
        ),
        (
            format!("{VNETS}/s01/subnets"),
            with(vec![
                ("subnet", "10.100.1.0/24".into()),
                ("type", "subnet".into()),
                ("gateway", "10.100.1.1".into()),
                ("snat", "1".into()),
                (
                    "dhcp-range",
                    "start-address=10.100.1.100,end-address=10.100.1.200".into(),
                ),
            ]),
        ),
    ] {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api.post(&path, &p).await;
    }
}

#[tokio::test]
async fn edits_stay_pending_until_one_apply_makes_them_running_and_applied() {
    let api = Api::start(0.001).await;
    lab(&api, None).await;
    // The edited config lists them; the running config does not yet.
    assert_eq!(ids(&api.get(VNETS, &[]).await, "vnet"), ["s01", "s02"]);
    assert!(api
        .get(VNETS, &[("running", "1")])
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let pending = api.get(VNETS, &[("pending", "1")]).await;
    assert_eq!(pending[0]["state"], "new");
    assert_eq!(pending[0]["pending"]["zone"], "zlab");
    assert_eq!(pending[0]["pending"]["alias"], "student 01");
    assert_eq!(pending[0]["type"], "vnet");
    let subnets = api.get(&format!("{VNETS}/s01/subnets"), &[]).await;
    assert_eq!(subnets[0]["subnet"], "zlab-10.100.1.0-24");
    assert_eq!(subnets[0]["cidr"], "10.100.1.0/24");
    assert_eq!(subnets[0]["dhcp-range"][0]["start-address"], "10.100.1.100");
    let one = api
        .get(&format!("{VNETS}/s01/subnets/zlab-10.100.1.0-24"), &[])
        .await;
    assert_eq!(one["gateway"], "10.100.1.1");
    assert_eq!(api.sim.sdn()["applied"]["vnets"], serde_json::json!({}));
    assert_eq!(api.sim.sdn()["pending"], true);

    let upid = api.put("/cluster/sdn", &[]).await;
    assert!(
        upid.as_str().unwrap().contains(":reloadnetworkall:"),
        "{upid}"
    );
    let st = api.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(api.sim.sdn_applies(), 1);
    let sdn = api.sim.sdn();
    assert_eq!(sdn["pending"], false);
    assert_eq!(sdn["applied"]["vnets"]["s01"]["zone"], "zlab");
    assert_eq!(
        ids(&api.get(VNETS, &[("running", "1")]).await, "vnet"),
        ["s01", "s02"]
    );
    let pending = api.get(VNETS, &[("pending", "1")]).await;
    assert!(pending[0].get("state").is_none(), "{pending}");
    // A change shows as changed, with the new value under pending.
    api.put(&format!("{VNETS}/s02"), &[("alias", "two")]).await;
    let v = api.get(&format!("{VNETS}/s02"), &[("pending", "1")]).await;
    assert_eq!(v["state"], "changed");
    assert_eq!(v["pending"]["alias"], "two");
    assert_eq!(
        ids(&api.get("/cluster/sdn", &[]).await, "id"),
        ["vnets", "zones", "controllers", "ipams", "dns", "fabrics"]
    );
}

#[tokio::test]
async fn while_locked_every_change_needs_the_lock_token() {
    let api = Api::start(0.001).await;
    let token = api.post("/cluster/sdn/lock", &[]).await;
    let token = token.as_str().unwrap().to_owned();
    let a = api
        .call(Method::POST, ZONES, &[("zone", "zlab"), ("type", "simple")])
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.message().trim_end(),
        "create sdn zone object failed: error during cfs-locked 'domain-sdn' operation: \
         invalid lock token provided! at /usr/share/perl5/PVE/Network/SDN.pm line 291."
    );
    let again = api.call(Method::POST, "/cluster/sdn/lock", &[]).await;
    assert_eq!(again.status, 500);
    assert!(again
        .message()
        .trim_end()
        .starts_with("could not acquire lock for SDN config"));
    lab(&api, Some(&token)).await;
    let bad = api
        .call(Method::PUT, "/cluster/sdn", &[("lock-token", "nope")])
        .await;
    assert_eq!(bad.status, 500);
    assert!(
        bad.message()
            .trim_end()
            .starts_with("could not commit SDN config"),
        "{bad:?}"
    );
    let upid = api.put("/cluster/sdn", &[("lock-token", &token)]).await;
    api.wait_task(&upid).await;
    // release-lock defaults to 1: the lock is gone, changes need no token.
    api.post(VNETS, &[("vnet", "s03"), ("zone", "zlab")]).await;
    // A lock is refused while changes are pending, unless allowed.
    let p = api.call(Method::POST, "/cluster/sdn/lock", &[]).await;
    assert!(
        p.message()
            .trim_end()
            .contains("configuration has pending changes"),
        "{p:?}"
    );
    let t2 = api
        .post("/cluster/sdn/lock", &[("allow-pending", "1")])
        .await;
    let wrong = api
        .call(Method::DELETE, "/cluster/sdn/lock", &[("lock-token", "x")])
        .await;
    assert!(wrong
        .message()
        .trim_end()
        .starts_with("could not release lock"));
    api.delete("/cluster/sdn/lock", &[("lock-token", t2.as_str().unwrap())])
        .await;
    api.post(VNETS, &[("vnet", "s04"), ("zone", "zlab")]).await;
}

#[tokio::test]
async fn naming_rules_and_zone_rules_answer_with_pve_texts() {
    let api = Api::start(0.001).await;
    let long = api
        .call(
            Method::POST,
            ZONES,
            &[("zone", "student07"), ("type", "simple")],
        )
        .await;
    assert_eq!(long.status, 400);
    assert_eq!(
        long.body["errors"]["zone"],
        "value may only be 8 characters long"
    );
    let vlan = api
        .call(Method::POST, ZONES, &[("zone", "zv"), ("type", "vlan")])
        .await;
    assert_eq!(vlan.status, 500);
    assert_eq!(
        vlan.message().trim_end(),
        "missing value for required option 'bridge'"
    );
    api.post(
        ZONES,
        &[("zone", "zv"), ("type", "vlan"), ("bridge", "vmbr1")],
    )
    .await;
    api.post(ZONES, &[("zone", "zs"), ("type", "simple")]).await;
    let dup = api
        .call(Method::POST, ZONES, &[("zone", "zs"), ("type", "simple")])
        .await;
    assert!(dup
        .message()
        .trim_end()
        .ends_with("sdn zone object ID 'zs' already defined"));
    let bad = api
        .call(Method::POST, VNETS, &[("vnet", "1abc"), ("zone", "zs")])
        .await;
    assert_eq!(
        bad.body["errors"]["vnet"],
        "value does not match the regex pattern"
    );
    let notag = api
        .call(Method::POST, VNETS, &[("vnet", "v1"), ("zone", "zv")])
        .await;
    assert_eq!(
        notag.message().trim_end(),
        "create sdn vnet object failed: 400 Parameter verification failed.\ntag: missing vlan tag"
    );
    api.post(VNETS, &[("vnet", "v1"), ("zone", "zv"), ("tag", "10")])
        .await;
    let same = api
        .call(
            Method::POST,
            VNETS,
            &[("vnet", "v2"), ("zone", "zv"), ("tag", "10")],
        )
        .await;
    assert!(
        same.message()
            .trim_end()
            .ends_with("tag: tag 10 already exist in vnet v1"),
        "{same:?}"
    );
    let simple_tag = api
        .call(
            Method::POST,
            VNETS,
            &[("vnet", "v3"), ("zone", "zs"), ("tag", "5")],
        )
        .await;
    assert!(simple_tag
        .message()
        .trim_end()
        .ends_with("tag: vlan tag is not allowed on simple zone"));
    // One CIDR once per zone.
    api.post(VNETS, &[("vnet", "a1"), ("zone", "zs")]).await;
    api.post(VNETS, &[("vnet", "a2"), ("zone", "zs")]).await;
    let s = [("subnet", "10.1.0.0/24"), ("type", "subnet")];
    api.post(&format!("{VNETS}/a1/subnets"), &s).await;
    let twice = api
        .call(Method::POST, &format!("{VNETS}/a2/subnets"), &s)
        .await;
    assert!(twice
        .message()
        .trim_end()
        .ends_with("sdn subnet object ID 'zs-10.1.0.0-24' already defined"));
    let gw = api
        .call(
            Method::POST,
            &format!("{VNETS}/a2/subnets"),
            &[
                ("subnet", "10.2.0.0/24"),
                ("type", "subnet"),
                ("gateway", "10.3.0.1"),
            ],
        )
        .await;
    assert!(gw
        .message()
        .trim_end()
        .ends_with("gateway: 10.3.0.1 is not in subnet 10.2.0.0/24"));
    let missing = api.call(Method::GET, &format!("{VNETS}/nope"), &[]).await;
    assert_eq!(
        missing.message().trim_end(),
        "sdn vnet 'nope' does not exist"
    );
}

#[tokio::test]
async fn teardown_goes_subnets_then_vnets_then_zone() {
    let api = Api::start(0.001).await;
    lab(&api, None).await;
    let a = api.call(Method::DELETE, &format!("{VNETS}/s01"), &[]).await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.message().trim_end(),
        "delete sdn vnet object failed: 400 Parameter verification failed.\nvnet: Can't delete vnet if subnets exists"
    );
    let z = api
        .call(Method::DELETE, &format!("{ZONES}/zlab"), &[])
        .await;
    assert!(
        z.message()
            .trim_end()
            .contains("zone zlab is used by vnet s01"),
        "{z:?}"
    );
    api.delete(&format!("{VNETS}/s01/subnets/zlab-10.100.1.0-24"), &[])
        .await;
    api.delete(&format!("{VNETS}/s01"), &[]).await;
    api.delete(&format!("{VNETS}/s02"), &[]).await;
    api.delete(&format!("{ZONES}/zlab"), &[]).await;
    assert!(api.get(ZONES, &[]).await.as_array().unwrap().is_empty());
    // Nothing was ever applied, so nothing is pending any more.
    assert_eq!(api.sim.sdn()["pending"], false);
}
