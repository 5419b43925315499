//! The persistent data volume: created once with its tags in the subnet's zone, found by the
//! owner uid and its purpose tag, kept across stop, start, replacement and spot relaunch.
//!
//! CreateVolume carries a ClientToken per volume generation, recorded in status before the call
//! (`status.dataVolumeRecord`), as the launch token is: a create retried after a crash repeats the
//! token and AWS returns the same volume; a volume deleted outside the operator (missing from
//! listings once it is old enough to be listed) is replaced by the next generation, whose new
//! token makes a new volume (AWS answers a used token with the volume it made, even deleted).

use std::collections::BTreeMap;

use jiff::Timestamp;
use molecule_crds::v1alpha1::{DataVolumeRecord, Workspace, WorkspaceStatus};

use super::scope::apply_status;
use super::status::VolumeState;
use crate::cloud::marks::data_volume_token;
use crate::cloud::tags::{Owner, VOLUME_PURPOSE};
use crate::cloud::{Instance, Volume, VolumeRequest, ZONE_MISMATCH};
use crate::context::Context;
use crate::reconcile::Error;
use crate::reconcile::launch::{LISTING_LAG, Step};

/// Whether `v` is a data volume that can still be used.
pub fn usable(v: &Volume) -> bool {
    v.tags.get(VOLUME_PURPOSE).map(String::as_str) == Some("data") && alive(v)
}

fn alive(v: &Volume) -> bool {
    !matches!(v.state.as_str(), "deleting" | "deleted" | "error")
}

/// Finds or creates the data volume; records a new generation in status before its create.
pub async fn ensure(
    ctx: &Context,
    ws: &Workspace,
    owner: &Owner,
    size_gb: u32,
    st: &mut WorkspaceStatus,
) -> Result<Volume, Error> {
    let mut mine: Vec<Volume> = ctx.main.cache.volumes_of(&owner.uid).into_iter().filter(usable).collect();
    mine.sort_by_key(|v| Some(v.id.as_str()) != st.data_volume_id.as_deref());
    if let Some(v) = mine.into_iter().next() {
        return Ok(v);
    }
    // Not listed: the one in status may still exist (listing lag, or tags that no longer match
    // the listing's filter after an identity change): read it by ID before making another.
    if let Some(id) = st.data_volume_id.clone() {
        let known = ctx.main.volumes.describe(std::slice::from_ref(&id)).await?;
        if let Some(v) = known.into_iter().find(|v| v.id == id && alive(v)) {
            return Ok(v);
        }
    }
    let mut tags: BTreeMap<String, String> = ctx.identity.tags(owner);
    tags.insert(VOLUME_PURPOSE.into(), "data".into());
    let mut req = VolumeRequest { client_token: String::new(), size_gb, zone: ctx.main.zone.clone(), tags };
    let mut next = next_create(st, &owner.uid, Timestamp::now());
    loop {
        let (record, fresh) = next;
        if fresh {
            st.data_volume_record = Some(record.clone());
            apply_status(ctx, ws, st).await?;
        }
        req.client_token.clone_from(&record.token);
        let v = ctx.main.volumes.create(&req).await?;
        ctx.failpoints.hit("workspace.volume.after-create").await;
        if !fresh && !usable(&v) {
            // The repeated token names a deleted volume: the next generation.
            next = (new_generation(&owner.uid, record.generation + 1), true);
            continue;
        }
        st.data_volume_record = Some(DataVolumeRecord { created_at: Some(Timestamp::now().to_string()), ..record });
        return Ok(v);
    }
}

fn new_generation(uid: &str, generation: u32) -> DataVolumeRecord {
    DataVolumeRecord { token: data_volume_token(uid, generation), generation, created_at: None }
}

/// The CreateVolume to make when no usable data volume is listed: the recorded token again
/// (`false`: a create that never returned, or a volume too young to be listed yet), or a new
/// generation to record first (`true`: none yet, or the volume was deleted behind our back).
pub fn next_create(st: &WorkspaceStatus, uid: &str, now: Timestamp) -> (DataVolumeRecord, bool) {
    let recorded = st.data_volume_record.clone().or_else(|| {
        // A volume made before generations were recorded: generation 0, created long ago.
        st.data_volume_id.as_ref().map(|_| DataVolumeRecord {
            token: data_volume_token(uid, 0),
            generation: 0,
            created_at: Some(Timestamp::UNIX_EPOCH.to_string()),
        })
    });
    let Some(r) = recorded else { return (new_generation(uid, 1), true) };
    let created = r.created_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
    let lag = i64::try_from(LISTING_LAG.as_secs()).unwrap_or(i64::MAX);
    match created {
        Some(t) if now.duration_since(t).as_secs() >= lag => (new_generation(uid, r.generation + 1), true),
        _ => (r, false),
    }
}

/// The message of a data volume in another zone than the subnet instances launch into, if so.
pub fn zone_mismatch(v: &Volume, subnet_zone: &str) -> Option<String> {
    (!v.zone.is_empty() && !subnet_zone.is_empty() && v.zone != subnet_zone).then(|| {
        format!(
            "data volume {} is in availability zone {} but EC2_SUBNET_ID is in {subnet_zone}: no instance there can \
             attach it. Set EC2_SUBNET_ID back to a subnet in {}, or move the data: snapshot the volume, create a \
             volume from the snapshot in {subnet_zone} and tag it like this one, then delete {}",
            v.id, v.zone, v.zone, v.id
        )
    })
}

/// A ZoneMismatch from AttachVolume (the volume's zone was unknown before), as what to do.
pub fn zone_error(e: &Error, v: Option<&Volume>) -> Option<String> {
    let Error::Cloud(c) = e else { return None };
    (c.code == ZONE_MISMATCH).then(|| {
        let id = v.map_or(c.target.as_str(), |v| v.id.as_str());
        format!(
            "data volume {id} is in another availability zone than the instance ({}): set EC2_SUBNET_ID back to a \
             subnet in the volume's zone, or snapshot the volume and restore it in the subnet's zone",
            c.message
        )
    })
}

/// The plan's steps without those that cannot succeed while the volume is in another zone: a
/// launch there would run an instance that never gets its data, and the attach fails.
pub fn held_back(steps: Vec<Step>) -> Vec<Step> {
    steps
        .into_iter()
        .filter(|s| !matches!(s, Step::Record { .. } | Step::Launch { .. } | Step::Attach { .. }))
        .collect()
}

/// The data volume as the status tells it, after the reconcile's steps (read again from the
/// cache, which every attach and detach writes through to).
pub fn state(
    ctx: &Context,
    uid: &str,
    v: Option<&Volume>,
    current: Option<&Instance>,
    want_gb: Option<u32>,
    zone: Option<String>,
) -> VolumeState {
    let Some(v) = v else { return VolumeState::None };
    if let Some(m) = zone {
        return VolumeState::ZoneMismatch(m);
    }
    let now = ctx.main.cache.volumes_of(uid).into_iter().find(|x| x.id == v.id).unwrap_or_else(|| v.clone());
    match (now.attached_to, current) {
        (Some(h), Some(c)) if h == c.id => {
            VolumeState::Attached { id: now.id, size_gb: now.size_gb, want_gb: want_gb.unwrap_or_default() }
        }
        (holder, _) => VolumeState::Moving { id: now.id, holder },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_first_create_records_generation_one() {
        let (r, fresh) = next_create(&WorkspaceStatus::default(), "u", at("2026-01-01T00:00:00Z"));
        assert!(fresh);
        assert_eq!((r.generation, r.token), (1, data_volume_token("u", 1)));
    }

    #[test]
    fn a_create_that_never_returned_repeats_its_token() {
        let st = WorkspaceStatus { data_volume_record: Some(new_generation("u", 3)), ..WorkspaceStatus::default() };
        let (r, fresh) = next_create(&st, "u", at("2026-01-01T00:00:00Z"));
        assert!(!fresh);
        assert_eq!(r.token, data_volume_token("u", 3));
    }

    #[test]
    fn a_volume_missing_past_the_listing_lag_is_replaced_by_the_next_generation() {
        let rec = DataVolumeRecord { created_at: Some("2026-01-01T00:00:00Z".into()), ..new_generation("u", 1) };
        let st = WorkspaceStatus {
            data_volume_id: Some("vol-1".into()),
            data_volume_record: Some(rec),
            ..WorkspaceStatus::default()
        };
        assert!(!next_create(&st, "u", at("2026-01-01T00:00:30Z")).1, "young: maybe not listed yet");
        let (r, fresh) = next_create(&st, "u", at("2026-01-01T01:00:00Z"));
        assert!(fresh);
        assert_eq!((r.generation, r.token), (2, data_volume_token("u", 2)));
    }

    #[test]
    fn a_record_less_volume_of_before_generations_is_generation_zero() {
        let st = WorkspaceStatus { data_volume_id: Some("vol-1".into()), ..WorkspaceStatus::default() };
        let (r, fresh) = next_create(&st, "u", at("2026-01-01T00:00:00Z"));
        assert!(fresh);
        assert_eq!(r.generation, 1, "generation 0 (the old per-uid token) is used up");
        assert_ne!(r.token, data_volume_token("u", 0));
    }

    #[test]
    fn a_zone_mismatch_holds_back_launches_and_attaches_only() {
        use crate::reconcile::launch::{LaunchReason, TerminateWhy};
        let term = Step::Terminate { ids: vec!["i-1".into()], why: TerminateWhy::Duplicate };
        let steps = vec![
            Step::Record { attempt: 2, reason: LaunchReason::Lost },
            Step::Launch { attempt: 2 },
            Step::Attach { volume: "vol-1".into(), to: "i-2".into() },
            term.clone(),
            Step::Stop { id: "i-1".into() },
        ];
        assert_eq!(held_back(steps), vec![term, Step::Stop { id: "i-1".into() }]);
    }

    #[test]
    fn an_attach_refused_for_its_zone_becomes_a_state() {
        let e = Error::Cloud(crate::cloud::CloudError {
            kind: crate::cloud::ErrorKind::Rejected,
            action: "attach volume",
            target: "vol-1".into(),
            code: ZONE_MISMATCH.into(),
            message: "vol-1 is in eu-west-1a".into(),
        });
        assert!(zone_error(&e, None).is_some_and(|m| m.contains("vol-1") && m.contains("EC2_SUBNET_ID")));
        assert_eq!(zone_error(&Error::waiting_for("x", std::time::Duration::from_secs(1)), None), None);
    }

    #[test]
    fn a_volume_in_another_zone_says_what_to_do() {
        let v = Volume { id: "vol-1".into(), zone: "eu-west-1a".into(), ..Volume::default() };
        assert_eq!(zone_mismatch(&v, "eu-west-1a"), None);
        assert_eq!(zone_mismatch(&Volume::default(), "eu-west-1b"), None, "unknown zone: no claim");
        let m = zone_mismatch(&v, "eu-west-1b").unwrap_or_default();
        assert!(m.contains("eu-west-1a") && m.contains("EC2_SUBNET_ID") && m.contains("snapshot"), "{m}");
    }
}
