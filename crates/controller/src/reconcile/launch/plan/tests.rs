use std::collections::BTreeMap;

use super::*;
use crate::cloud::tags::LAUNCH_ATTEMPT;

fn inst(id: &str, attempt: u32, state: InstanceState, hash: &str, at: &str) -> Instance {
    Instance {
        id: id.into(),
        state,
        image_id: "ami-1".into(),
        private_ip: Some("10.0.0.1".into()),
        launch_time: Some(at.into()),
        tags: BTreeMap::from([(LAUNCH_ATTEMPT.into(), attempt.to_string()), (SPEC_HASH_TAG.into(), hash.into())]),
        spot: false,
    }
}

fn inputs(instances: &[Instance]) -> Inputs<'_> {
    Inputs {
        instances,
        status_instance: None,
        recorded: None,
        spec_hash: "h1",
        want_running: true,
        replace_allowed: false,
        data_volume: None,
        just_launched: false,
        launched: false,
    }
}

use InstanceState::{Pending, Running, Stopped, Terminated};

#[test]
fn first_reconcile_records_before_launching() {
    let p = plan(&inputs(&[]));
    assert_eq!(p.steps, vec![Step::Record { attempt: 1, reason: LaunchReason::First }]);
}

#[test]
fn recorded_but_never_launched_launches_the_same_attempt() {
    let mut i = inputs(&[]);
    i.recorded = Some((1, "h1"));
    assert_eq!(plan(&i).steps, vec![Step::Launch { attempt: 1 }]);
    // The spec changed between the record and the launch: record again, same attempt and token.
    i.recorded = Some((1, "h0"));
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 1, reason: LaunchReason::First }]);
}

#[test]
fn a_launched_attempt_missing_from_the_listing_is_never_launched_again() {
    // A spot instance stopped (terminated) and then purged: its token is spent.
    let mut i = inputs(&[]);
    i.recorded = Some((1, "h1"));
    i.launched = true;
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Restart }]);
    i.status_instance = Some("i-1");
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Lost }]);
    // Within the listing lag it may just not be listed yet: wait.
    i.just_launched = true;
    assert_eq!(plan(&i).steps, vec![]);
}

#[test]
fn a_launched_instance_is_adopted_even_if_status_never_heard_of_it() {
    let v = [inst("i-1", 1, Running, "h1", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    let p = plan(&i);
    assert_eq!(p.current.map(|c| c.id), Some("i-1".into()));
    assert!(p.steps.is_empty());
}

#[test]
fn duplicates_keep_the_one_in_status_else_the_oldest() {
    let v =
        [inst("i-b", 1, Running, "h1", "t2"), inst("i-a", 1, Running, "h1", "t1"), inst("i-c", 1, Pending, "h1", "t3")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    let p = plan(&i);
    assert_eq!(p.current.as_ref().map(|c| c.id.as_str()), Some("i-a"));
    assert_eq!(p.steps, vec![Step::Terminate { ids: vec!["i-b".into(), "i-c".into()], why: TerminateWhy::Duplicate }]);
    i.status_instance = Some("i-c");
    let p = plan(&i);
    assert_eq!(p.current.as_ref().map(|c| c.id.as_str()), Some("i-c"));
    assert_eq!(p.steps, vec![Step::Terminate { ids: vec!["i-a".into(), "i-b".into()], why: TerminateWhy::Duplicate }]);
}

#[test]
fn an_instance_terminated_behind_our_back_is_relaunched_with_the_next_attempt() {
    let v = [inst("i-1", 1, Terminated, "h1", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    i.status_instance = Some("i-1");
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Lost }]);
    // Vanished from the listing entirely reads the same.
    let mut j = inputs(&[]);
    j.recorded = Some((1, "h1"));
    j.status_instance = Some("i-1");
    assert_eq!(plan(&j).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Lost }]);
    // ...unless it was launched moments ago: a listing may not show it yet.
    j.just_launched = true;
    assert!(plan(&j).steps.is_empty());
}

#[test]
fn stop_and_start() {
    let v = [inst("i-1", 1, Running, "h1", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    i.want_running = false;
    assert_eq!(plan(&i).steps, vec![Step::Stop { id: "i-1".into() }]);
    let v = [inst("i-1", 1, Stopped, "h1", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    assert_eq!(plan(&i).steps, vec![Step::Start { id: "i-1".into() }]);
    i.want_running = false;
    assert!(plan(&i).steps.is_empty());
}

#[test]
fn spot_stops_by_terminating_and_restarts_with_a_new_attempt() {
    let mut s = inst("i-1", 1, Running, "h1", "t1");
    s.spot = true;
    let v = [s];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    i.want_running = false;
    assert_eq!(plan(&i).steps, vec![Step::Terminate { ids: vec!["i-1".into()], why: TerminateWhy::SpotStop }]);
    let v = [inst("i-1", 1, Terminated, "h1", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h1"));
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Restart }]);
}

#[test]
fn drift_is_reported_and_applied_only_when_allowed() {
    let v = [inst("i-1", 1, Running, "h0", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((1, "h0"));
    let p = plan(&i);
    assert!(p.drifted);
    assert!(p.steps.is_empty(), "Manual: report only");
    i.replace_allowed = true;
    assert_eq!(plan(&i).steps, vec![Step::Record { attempt: 2, reason: LaunchReason::Replace }]);
}

#[test]
fn replacement_moves_the_data_volume_before_retiring_the_predecessor() {
    let vol = Volume {
        id: "vol-1".into(),
        state: "in-use".into(),
        attached_to: Some("i-1".into()),
        tags: BTreeMap::new(),
        ..Volume::default()
    };
    // New instance pending: nothing happens to the old one yet.
    let v = [inst("i-1", 1, Running, "h0", "t1"), inst("i-2", 2, Pending, "h1", "t2")];
    let mut i = inputs(&v);
    i.recorded = Some((2, "h1"));
    i.status_instance = Some("i-1");
    i.data_volume = Some(&vol);
    let p = plan(&i);
    assert_eq!(p.current.as_ref().map(|c| c.id.as_str()), Some("i-2"));
    assert_eq!(p.predecessors, vec!["i-1".to_owned()]);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    // New instance running: retire the old one (its termination frees the volume).
    let v = [inst("i-1", 1, Running, "h0", "t1"), inst("i-2", 2, Running, "h1", "t2")];
    i.instances = &v;
    assert_eq!(plan(&i).steps, vec![Step::Terminate { ids: vec!["i-1".into()], why: TerminateWhy::Predecessor }]);
    // Old one gone, volume still marked on it: detach; then attach once available.
    let v = [inst("i-1", 1, Terminated, "h0", "t1"), inst("i-2", 2, Running, "h1", "t2")];
    i.instances = &v;
    assert_eq!(plan(&i).steps, vec![Step::Detach { volume: "vol-1".into(), from: "i-1".into() }]);
    let free = Volume { attached_to: None, state: "available".into(), ..vol.clone() };
    i.data_volume = Some(&free);
    assert_eq!(plan(&i).steps, vec![Step::Attach { volume: "vol-1".into(), to: "i-2".into() }]);
}

#[test]
fn a_crash_after_recording_a_replacement_launches_it_not_a_third() {
    let v = [inst("i-1", 1, Running, "h0", "t1")];
    let mut i = inputs(&v);
    i.recorded = Some((2, "h1"));
    i.status_instance = Some("i-1");
    i.replace_allowed = true;
    let p = plan(&i);
    assert_eq!(p.steps, vec![Step::Launch { attempt: 2 }]);
    assert_eq!(p.predecessors, vec!["i-1".to_owned()]);
}

mod props {
    use proptest::prelude::*;

    use super::*;

    fn state() -> impl Strategy<Value = InstanceState> {
        prop_oneof![Just(Pending), Just(Running), Just(Stopped), Just(InstanceState::ShuttingDown), Just(Terminated)]
    }

    proptest! {
        /// Whatever the cloud shows, the plan keeps at most one instance of the current attempt
        /// alive and never launches while one is alive.
        #[test]
        fn never_two_alive_and_never_launch_beside_a_live_one(
            raw in proptest::collection::vec((1u32..4, state(), any::<bool>()), 0..6),
            recorded in proptest::option::of(1u32..4),
            want_running in any::<bool>(),
            replace_allowed in any::<bool>(),
        ) {
            let v: Vec<Instance> = raw.iter().enumerate()
                .map(|(n, (a, s, same))| inst(&format!("i-{n}"), *a, *s, if *same { "h1" } else { "h0" }, &format!("t{n}")))
                .collect();
            let mut i = inputs(&v);
            i.recorded = recorded.map(|a| (a, "h1"));
            i.want_running = want_running;
            i.replace_allowed = replace_allowed;
            let p = plan(&i);
            let terminated: Vec<&String> = p.steps.iter().flat_map(|s| match s { Step::Terminate { ids, .. } => ids.iter().collect(), _ => vec![] }).collect();
            let survivors = v.iter().filter(|x| x.state.is_alive() && x.attempt() == p.attempt && !terminated.contains(&&x.id)).count();
            prop_assert!(survivors <= 1, "{survivors} instances of attempt {} survive: {:?}", p.attempt, p.steps);
            let launches = p.steps.iter().any(|s| matches!(s, Step::Launch { .. } | Step::Record { .. }));
            if launches {
                prop_assert!(want_running);
                let launch_attempt = p.steps.iter().find_map(|s| match s { Step::Launch { attempt } | Step::Record { attempt, .. } => Some(*attempt), _ => None });
                let alive_same = v.iter().any(|x| x.state.is_alive() && Some(x.attempt()) == launch_attempt);
                prop_assert!(!alive_same, "launching attempt {launch_attempt:?} beside a live instance of it");
            }
        }
    }
}
