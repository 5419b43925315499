//! The persistent data volume: created once with its tags in the subnet's zone, found by the
//! owner uid and its purpose tag, kept across stop, start, replacement and spot relaunch.

use std::collections::BTreeMap;

use crate::cloud::marks::data_volume_token;
use crate::cloud::tags::{Owner, VOLUME_PURPOSE};
use crate::cloud::{Volume, VolumeRequest};
use crate::context::Context;
use crate::reconcile::Error;

/// Finds or creates the data volume.
pub async fn ensure(ctx: &Context, owner: &Owner, size_gb: u32, status_id: Option<&str>) -> Result<Volume, Error> {
    let mut mine: Vec<Volume> = ctx
        .main
        .cache
        .volumes_of(&owner.uid)
        .into_iter()
        .filter(|v| v.tags.get(VOLUME_PURPOSE).map(String::as_str) == Some("data"))
        .filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted" | "error"))
        .collect();
    mine.sort_by_key(|v| Some(v.id.as_str()) != status_id);
    if let Some(v) = mine.into_iter().next() {
        return Ok(v);
    }
    let mut tags: BTreeMap<String, String> = ctx.identity.tags(owner);
    tags.insert(VOLUME_PURPOSE.into(), "data".into());
    let token = data_volume_token(&owner.uid);
    let v = ctx
        .main
        .volumes
        .create(&VolumeRequest { client_token: token, size_gb, zone: ctx.main.zone.clone(), tags })
        .await?;
    ctx.failpoints.hit("workspace.volume.after-create").await;
    Ok(v)
}
