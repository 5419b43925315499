use std::collections::BTreeMap;

use super::*;

fn running(boot: Option<&str>, display: Option<&str>) -> Instance {
    let mut tags = BTreeMap::new();
    if let Some(b) = boot {
        tags.insert(BOOT.to_owned(), b.to_owned());
    }
    if let Some(d) = display {
        tags.insert(DISPLAY.to_owned(), d.to_owned());
    }
    Instance {
        id: "i-1".into(),
        state: InstanceState::Running,
        image_id: "ami-1".into(),
        private_ip: Some("10.0.0.5".into()),
        launch_time: None,
        tags,
        spot: false,
    }
}

fn view(current: Option<&Instance>) -> View<'_> {
    View {
        rejection: None,
        want_running: true,
        current,
        replacing: false,
        dns: DnsState::Ready,
        display_mode: DisplayMode::None,
        drift: None,
        error: None,
        mismatch: None,
        volume: VolumeState::None,
    }
}

fn ready(st: &WorkspaceStatus) -> bool {
    conditions::is_true(&st.conditions, "Ready")
}

#[test]
fn ready_only_after_the_bootstrap_says_so() {
    let booting = running(None, None);
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &view(Some(&booting)), Some(1), "t");
    assert_eq!(phase(&view(Some(&booting))), WorkspacePhase::Provisioning);
    assert!(!ready(&st));
    assert_eq!(conditions::get(&st.conditions, "Ready").map(|c| c.reason.as_str()), Some("Booting"));
    let up = running(Some("ready"), None);
    set_conditions(&mut st, &view(Some(&up)), Some(1), "t");
    assert!(ready(&st));
    assert_eq!(phase(&view(Some(&up))), WorkspacePhase::Running);
    let failed = running(Some("failed"), None);
    assert_eq!(phase(&view(Some(&failed))), WorkspacePhase::Failed);
}

#[test]
fn display_needs_its_own_tag() {
    let up = running(Some("ready"), None);
    let mut v = view(Some(&up));
    v.display_mode = DisplayMode::DesktopControl;
    assert_eq!(display_status(&v), DisplayStatusSpec::Starting);
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(!ready(&st));
    let shown = running(Some("ready"), Some("ready"));
    v.current = Some(&shown);
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(ready(&st));
    let down = running(Some("ready"), Some("offline"));
    v.current = Some(&down);
    assert_eq!(display_status(&v), DisplayStatusSpec::Offline);
}

#[test]
fn a_rejection_names_its_reason_and_emits_one_warning() {
    let mut v = view(None);
    v.rejection = Some(("QuotaExceeded", "spec.compute.gpu: quota maxGpus is 0"));
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &v, Some(1), "t");
    st.phase = Some(phase(&v));
    let a = conditions::get(&st.conditions, "Admitted").unwrap();
    assert_eq!((a.status, a.reason.as_str()), (ConditionStatus::False, "QuotaExceeded"));
    let ev = transitions(&WorkspaceStatus::default(), &st);
    assert!(ev.iter().any(|(w, r, n)| *w && r == "QuotaExceeded" && n.contains("spec.compute.gpu")), "{ev:?}");
    assert!(transitions(&st, &st).is_empty(), "no news, no event");
}

#[test]
fn drift_keeps_ready_and_says_so() {
    let up = running(Some("ready"), None);
    let mut v = view(Some(&up));
    v.drift = Some("instanceType: t3.large → t3.xlarge".into());
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &v, Some(2), "t");
    assert!(ready(&st));
    assert!(conditions::is_true(&st.conditions, "Drifted"));
}

#[test]
fn a_stopped_workspace_pays_only_its_volumes() {
    let total = molecule_crds::catalog::Usd::parse("0.1796").unwrap();
    let instance = molecule_crds::catalog::Usd::parse("0.1664").unwrap();
    assert_eq!(hourly_usd(total, instance, WorkspacePhase::Running), "0.1796");
    assert_eq!(hourly_usd(total, instance, WorkspacePhase::Stopping), "0.1796");
    assert_eq!(hourly_usd(total, instance, WorkspacePhase::Stopped), "0.0132", "storage only");
}

fn reason(st: &WorkspaceStatus, t: &str) -> String {
    conditions::get(&st.conditions, t).map(|c| c.reason.clone()).unwrap_or_default()
}

#[test]
fn ready_needs_the_data_volume_on_the_current_instance() {
    // The replacement booted (boot=ready), its predecessor is terminating (not `replacing` any
    // more), but the data volume is still on the old instance, then free: not Ready (issue 13).
    let up = running(Some("ready"), None);
    let mut st = WorkspaceStatus::default();
    let mut v = view(Some(&up));
    v.volume = VolumeState::Moving { id: "vol-1".into(), holder: Some("i-0".into()) };
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(!ready(&st));
    assert_eq!(reason(&st, "Ready"), "VolumeMoving");
    assert_eq!(reason(&st, "DataVolumeReady"), "VolumeMoving");
    assert_eq!(phase(&v), WorkspacePhase::Provisioning, "not Running before the volume is on it");
    v.volume = VolumeState::Moving { id: "vol-1".into(), holder: None };
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(!ready(&st));
    assert_eq!(reason(&st, "Ready"), "VolumeAttaching");
    v.volume = VolumeState::Attached { id: "vol-1".into(), size_gb: 10, want_gb: 10 };
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(ready(&st));
    assert!(conditions::is_true(&st.conditions, "DataVolumeReady"));
    assert_eq!(phase(&v), WorkspacePhase::Running);
}

#[test]
fn a_data_volume_in_another_zone_stalls_with_what_to_do() {
    let up = running(Some("ready"), None);
    let mut st = WorkspaceStatus::default();
    let mut v = view(Some(&up));
    v.volume = VolumeState::ZoneMismatch("set EC2_SUBNET_ID back".into());
    set_conditions(&mut st, &v, Some(1), "t");
    assert_eq!(reason(&st, "Ready"), ZONE_MISMATCH_REASON);
    let stalled = molecule_crds::kstatus::stalled(&st.conditions);
    assert_eq!(stalled, Some((ZONE_MISMATCH_REASON.to_owned(), "set EC2_SUBNET_ID back".to_owned())));
    // Even with no instance yet (the launch is held back): the zone is the news, not "Launching".
    let mut st = WorkspaceStatus::default();
    v.current = None;
    set_conditions(&mut st, &v, Some(1), "t");
    assert_eq!(reason(&st, "Ready"), ZONE_MISMATCH_REASON);
}

#[test]
fn a_data_gb_change_is_reported_not_hidden() {
    let up = running(Some("ready"), None);
    let mut st = WorkspaceStatus::default();
    let mut v = view(Some(&up));
    v.volume = VolumeState::Attached { id: "vol-1".into(), size_gb: 10, want_gb: 20 };
    set_conditions(&mut st, &v, Some(1), "t");
    assert!(ready(&st), "the workspace runs with its volume");
    assert_eq!(reason(&st, "DataVolumeReady"), "SizeNotApplied");
    let msg = conditions::get(&st.conditions, "DataVolumeReady").map(|c| c.message.clone()).unwrap_or_default();
    assert!(msg.contains("10 GB") && msg.contains("20"), "{msg}");
    v.volume = VolumeState::None;
    set_conditions(&mut st, &v, Some(1), "t");
    assert_eq!(reason(&st, "DataVolumeReady"), "NoDataVolume");
}

#[test]
fn an_identity_mismatch_is_said_in_ready_and_stalls() {
    let mut v = view(None);
    v.mismatch = Some("instance i-1 named in status exists but is not this operator's".into());
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &v, Some(1), "t");
    let reason = crate::reconcile::launch::verify::REASON;
    for t in ["InstanceReady", "Ready"] {
        let c = conditions::get(&st.conditions, t).unwrap();
        assert_eq!((c.reason.as_str(), c.message.contains("i-1")), (reason, true), "{t}");
    }
    assert!(molecule_crds::kstatus::STALLED_REASONS.contains(&reason));
    assert_eq!(phase(&v), WorkspacePhase::Failed);
}

#[test]
fn a_launch_does_not_write_the_old_ready_next_to_the_new_instance() {
    use crate::reconcile::launch::{LaunchReason, Step, TerminateWhy};
    let up = running(Some("ready"), None);
    let mut st = WorkspaceStatus::default();
    set_conditions(&mut st, &view(Some(&up)), Some(1), "t");
    st.phase = Some(WorkspacePhase::Running);
    assert!(ready(&st));
    let other = [Step::Terminate { ids: vec!["i-0".into()], why: TerminateWhy::Duplicate }];
    before_steps(&mut st, &other, Some(2), "t2");
    assert!(ready(&st), "no launch: nothing to say before the steps");
    let replace = [Step::Record { attempt: 2, reason: LaunchReason::Replace }];
    before_steps(&mut st, &replace, Some(2), "t2");
    assert!(!ready(&st), "the mid-protocol write of the launch must not say Ready");
    assert_eq!(reason(&st, "Ready"), "Replacing");
    assert_eq!(reason(&st, "InstanceReady"), "Replacing");
    assert_eq!(st.phase, Some(WorkspacePhase::Replacing));
    before_steps(&mut st, &[Step::Launch { attempt: 2 }], Some(2), "t2");
    assert_eq!(reason(&st, "Ready"), "Launching");
}
