//! Every Workspace and Tenant that exists, whatever `WORKSPACE_SELECTOR` and `TENANT_SELECTOR`
//! say. The watches hold only the selected objects; an object relabelled out of this operator's
//! shard still owns what this operator created for it, so the scan counts it as live. Read with
//! paginated metadata-only lists (uids and names, no specs) just before the findings are
//! classified.

use std::fmt::Debug;

use kube::api::{ListParams, ObjectMeta};
use kube::{Api, Client, Resource};
use molecule_crds::v1alpha1::{Tenant, Workspace};
use serde::de::DeserializeOwned;

use super::classify::{Live, LiveOwner};

/// Objects per page of the metadata lists.
const PAGE: u32 = 500;

/// Every Workspace (as `namespace/name`) and Tenant (as its name), by uid.
pub async fn everywhere(client: &Client) -> Result<Live, kube::Error> {
    let mut live = Live::default();
    for m in list_all::<Workspace>(client).await? {
        let qualified = format!("{}/{}", m.namespace.unwrap_or_default(), m.name.unwrap_or_default());
        live.owners.insert(m.uid.unwrap_or_default(), LiveOwner { qualified, ..LiveOwner::default() });
    }
    for m in list_all::<Tenant>(client).await? {
        let name = m.name.unwrap_or_default();
        live.owners.insert(m.uid.unwrap_or_default(), LiveOwner { qualified: name.clone(), ..LiveOwner::default() });
        live.tenants.insert(name);
    }
    Ok(live)
}

async fn list_all<K>(client: &Client) -> Result<Vec<ObjectMeta>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&lp).await?;
        out.extend(page.items.into_iter().map(|o| o.metadata));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// `selected` (the watches: full status, so duplicates can be judged) completed with every other
/// existing owner (no status: a second instance of an owner outside the shard is never judged).
pub fn complete(mut selected: Live, all: &Live) -> Live {
    for (uid, o) in &all.owners {
        selected.owners.entry(uid.clone()).or_insert_with(|| o.clone());
    }
    selected.tenants.extend(all.tenants.iter().cloned());
    selected
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use molecule_crds::v1alpha1::OrphanKind;

    use super::*;
    use crate::orphans::classify::{Marked, classify};

    fn marked(kind: OrphanKind, id: &str, uid: &str, tenant: &str) -> Marked {
        Marked {
            kind,
            id: id.into(),
            region: "us-east-1".into(),
            owner_kind: Some("Workspace".into()),
            owner_uid: Some(uid.into()),
            owner: Some(format!("{tenant}/w")),
            tenant: Some(tenant.into()),
            alive: true,
            launched_at: Some(Timestamp::UNIX_EPOCH),
            attempt: Some(1),
            retained: false,
        }
    }

    #[test]
    fn an_owner_outside_the_selector_is_live_and_a_selected_one_keeps_its_status() {
        let mut selected = Live::default();
        let me = LiveOwner { qualified: "a/mine".into(), instance_id: Some("i-mine".into()), ..LiveOwner::default() };
        selected.owners.insert("u-mine".into(), me.clone());
        let mut all = Live::default();
        for (uid, q) in [("u-mine", "a/mine"), ("u-moved", "a/moved"), ("u-tn", "other")] {
            all.owners.insert(uid.into(), LiveOwner { qualified: q.into(), ..LiveOwner::default() });
        }
        all.tenants.insert("other".into());
        let live = complete(selected.clone(), &all);
        assert_eq!(live.owners.get("u-mine"), Some(&me), "the watch's view wins");
        let marked = vec![
            marked(OrphanKind::Instance, "i-moved", "u-moved", "a"),
            marked(OrphanKind::SecurityGroup, "sg-moved", "u-moved", "a"),
            marked(OrphanKind::Volume, "vol-moved", "u-moved", "a"),
            Marked { owner_uid: None, ..marked(OrphanKind::Tunnel, "t-other", "", "other") },
            marked(OrphanKind::Instance, "i-dup", "u-mine", "a"),
            marked(OrphanKind::Instance, "i-dead", "u-dead", "a"),
        ];
        let ids: Vec<String> = classify(&marked, &live, Timestamp::now()).into_iter().map(|f| f.id).collect();
        assert_eq!(ids, vec!["i-dup".to_owned(), "i-dead".to_owned()]);
        // Before: the moved Workspace's machine, group and volume and the tunnel were orphans.
        let before: Vec<String> = classify(&marked, &selected, Timestamp::now()).into_iter().map(|f| f.id).collect();
        assert!(before.contains(&"i-moved".to_owned()) && before.contains(&"t-other".to_owned()), "{before:?}");
    }
}
