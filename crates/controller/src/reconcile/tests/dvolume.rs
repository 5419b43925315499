//! The Workspace's data volume on the fake cloud (issue 13): CreateVolume's token per volume
//! generation, recorded in status before the call; a volume deleted outside the operator is
//! replaced by the next generation; one that is only missing from the listing is read by ID.

use molecule_crds::v1alpha1::{Workspace, WorkspaceStatus};

use crate::cloud::Volume;
use crate::cloud::fake::ops;
use crate::cloud::marks::data_volume_token;
use crate::reconcile::workspace::volume;
use crate::testing;

fn workspace(uid: &str) -> Workspace {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
        "metadata": {"name": format!("ws-{uid}"), "namespace": "acme", "uid": uid},
        "spec": {"tenant": "acme", "runtime": "claude-code", "compute": {"volume": {"dataGb": 10}}},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_data_volume_deleted_outside_the_operator_is_made_again_with_the_next_token() {
    let fake = testing::cloud();
    let (ctx, api) = testing::context(&fake).await;
    let (ws, owner) = (workspace("dv1"), testing::workspace_owner("dv1"));
    let mut st = WorkspaceStatus::default();
    let first = volume::ensure(&ctx, &ws, &owner, 10, &mut st).await.unwrap();
    let written = api.statuses();
    assert_eq!(written.len(), 1, "the record is written before CreateVolume");
    assert_eq!(written[0]["dataVolumeRecord"]["token"], data_volume_token("dv1", 1));
    assert_eq!(written[0]["dataVolumeRecord"]["generation"], 1);
    assert!(written[0]["dataVolumeRecord"].get("createdAt").is_none(), "not created yet when written");
    assert!(st.data_volume_record.as_ref().is_some_and(|r| r.created_at.is_some()));
    st.data_volume_id = Some(first.id.clone());
    // A converged reconcile: found in the cache, no call.
    assert_eq!(volume::ensure(&ctx, &ws, &owner, 10, &mut st).await.unwrap().id, first.id);
    assert_eq!(fake.count(ops::CREATE_VOLUME), 1);

    // Deleted behind the operator's back (AWS answers the old token with the deleted volume).
    fake.volumes().delete(&first.id).await.unwrap();
    ctx.main.cache.forget::<Volume>(&first.id); // the next listing, without it
    let second = volume::ensure(&ctx, &ws, &owner, 10, &mut st).await.unwrap();
    assert_ne!(second.id, first.id, "a new volume, not the deleted one");
    assert!(volume::usable(&second), "{second:?}");
    let rec = st.data_volume_record.clone().unwrap();
    assert_eq!((rec.generation, rec.token.as_str()), (2, data_volume_token("dv1", 2).as_str()));
    assert_eq!(api.statuses().last().unwrap()["dataVolumeRecord"]["generation"], 2, "recorded first");
    assert!(fake.volume(&second.id).is_some());
}

#[tokio::test]
async fn a_data_volume_missing_from_the_listing_is_read_by_id_not_made_again() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let (ws, owner) = (workspace("dv2"), testing::workspace_owner("dv2"));
    let mut st = WorkspaceStatus::default();
    let v = volume::ensure(&ctx, &ws, &owner, 10, &mut st).await.unwrap();
    st.data_volume_id = Some(v.id.clone());
    // Long after its creation, a listing without it (a tag edited, another MOLECULE_ENV...).
    st.data_volume_record.as_mut().unwrap().created_at = Some("2020-01-01T00:00:00Z".into());
    ctx.main.cache.forget::<Volume>(&v.id);
    assert_eq!(volume::ensure(&ctx, &ws, &owner, 10, &mut st).await.unwrap().id, v.id);
    assert_eq!(fake.count(ops::CREATE_VOLUME), 1, "no second volume: the data is on the first");
}
