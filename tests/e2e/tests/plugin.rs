//! kubectl-molecule (crates/plugin) as a user runs it: the built binary as a real process with the
//! test world's kubeconfig and AWS settings, against a running operator. Checks exit codes, the
//! one-line errors, and what the operator mirrors into status.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use molecule_crds::catalog::{Catalog, Usd};
use molecule_crds::v1alpha1::{Workspace, WorkspacePhase};
use molecule_e2e::scenario::Scenario;
use serde_json::{Value, json};

mod plugin_support;

use plugin_support::*;

#[tokio::test]
async fn users_and_agents_take_and_release_the_display_lock() {
    let s = desktop_scenario("plug-lock").await;
    user_holds_agent_refused(&s).await;
    forced_take_over_leaves_an_event(&s).await;
    racing_takers_and_expiry(&s).await;
}

/// A user takes the lock; the operator mirrors it; agents and other users are refused; release.
async fn user_holds_agent_refused(s: &Scenario) {
    let ns = s.ns.as_str();
    let st = ok(&run(s, &["display", "status", "desk", "-n", ns]), "status");
    assert!(st.contains("CONTROLLER") && st.contains("1600x900") && st.contains("novnc"), "{st}");

    // A user takes it; the operator mirrors it within seconds.
    ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "alice", "--for", "10m"]), "alice takes");
    let took = wait_controller(s, "desk", "user", "alice", MIRROR).await;
    eprintln!("status.display.controller showed user after {took:?}");
    // An agent is refused while the user holds it, with --force too; so is another user without it.
    let agent = run(s, &["display", "take", "desk", "-n", ns, "--as", "agent:bot"]);
    fails(&agent, "agent take", &[&format!("workspace {ns}/desk"), "held by user:alice until"]);
    let forced = run(s, &["display", "take", "desk", "-n", ns, "--as", "agent:bot", "--force"]);
    fails(&forced, "agent forced take", &["user:alice", "an agent never takes the desktop from a user"]);
    fails(&run(s, &["display", "release", "desk", "-n", ns, "--as", "bob"]), "bob release", &["held by user:alice"]);
    // Nor may an agent release it, --force or not (release then take would take it from her).
    fails(
        &run(s, &["display", "release", "desk", "-n", ns, "--as", "agent:bot", "--force"]),
        "agent forced release",
        &["held by user:alice", "an agent never takes the desktop from a user"],
    );
    assert_eq!(holder(s, "desk").await.as_deref(), Some("user:alice"));
    let json: Value =
        serde_json::from_str(&ok(&run(s, &["display", "status", "desk", "-n", ns, "-o", "json"]), "json")).unwrap();
    assert_eq!((json["controller"].as_str(), json["holder"].as_str()), (Some("user"), Some("alice")));

    ok(&run(s, &["display", "release", "desk", "-n", ns, "--as", "alice"]), "alice releases");
    wait_controller(s, "desk", "none", "", MIRROR).await;
}

/// An agent holds it; a user takes it over with --force, and the agent is told by an Event.
async fn forced_take_over_leaves_an_event(s: &Scenario) {
    let ns = s.ns.as_str();
    ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "agent:bot", "--for", "1h"]), "agent takes");
    wait_controller(s, "desk", "agent", "bot", MIRROR).await;
    fails(
        &run(s, &["display", "take", "desk", "-n", ns, "--as", "bob"]),
        "bob take",
        &["held by agent:bot", "--force"],
    );
    let out = ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "bob", "--force"]), "bob forces");
    assert!(out.contains("taken over from agent:bot"), "{out}");
    wait_controller(s, "desk", "user", "bob", MIRROR).await;
    let events = s.events("desk").await;
    assert!(
        events.iter().any(|(_, r, n)| r == "DisplayTakenOver" && n.contains("user:bob") && n.contains("agent:bot")),
        "no DisplayTakenOver Event naming both: {events:?}"
    );
    ok(&run(s, &["display", "release", "desk", "-n", ns, "--as", "bob"]), "bob releases");
}

/// Two takers at once: exactly one wins; a short hold expires to none.
async fn racing_takers_and_expiry(s: &Scenario) {
    let ns = s.ns.as_str();
    let a = spawn(s, &["display", "take", "desk", "-n", ns, "--as", "carol"]);
    let b = spawn(s, &["display", "take", "desk", "-n", ns, "--as", "dave"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        [a.status.success(), b.status.success()].iter().filter(|x| **x).count(),
        1,
        "exactly one winner: {a:?} {b:?}"
    );
    let winner = if a.status.success() { "user:carol" } else { "user:dave" };
    assert_eq!(holder(s, "desk").await.as_deref(), Some(winner));
    ok(&run(s, &["display", "release", "desk", "-n", ns, "--force", "--as", "admin"]), "forced release");

    // An expired lock reads as none, in status and in the plugin.
    ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "erin", "--for", "3s"]), "short take");
    wait_controller(s, "desk", "user", "erin", MIRROR).await;
    wait_controller(s, "desk", "none", "", Duration::from_secs(30)).await;
    let json: Value =
        serde_json::from_str(&ok(&run(s, &["display", "status", "desk", "-n", ns, "-o", "json"]), "json")).unwrap();
    assert_eq!(json["controller"], "none", "{json}");
    // The expired holder no longer blocks anyone.
    ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "agent:bot", "--for", "1m"]), "agent after expiry");
    ok(&run(s, &["display", "release", "desk", "-n", ns, "--as", "agent:bot"]), "agent releases");
}

#[tokio::test]
async fn display_open_holds_the_lock_and_prints_the_tunnel() {
    let s = desktop_scenario("plug-open").await;
    let ns = s.ns.as_str();
    let w = s.get("desk").await.unwrap();
    let instance = w.status.unwrap().instance_id.unwrap();
    let mut child = spawn(&s, &["display", "open", "desk", "-n", ns, "--as", "frank", "--local-port", "16080"]);
    let mut out = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains("Ctrl-C") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        text
    })
    .await
    .unwrap();
    for needle in [
        format!("--instance-id {instance}"),
        "--connection-type eice".to_owned(),
        "--local-forwarding 16080:localhost:6080".to_owned(),
        "http://localhost:16080/vnc.html".to_owned(),
        "password: the Workspace's display password".to_owned(),
        "password file: ".to_owned(),
    ] {
        assert!(printed.contains(&needle), "{needle:?} missing from:\n{printed}");
    }
    // The holder is handed the Workspace's display password (issue 12): in a file of theirs alone,
    // the value of the Workspace's own secret, removed when the lock is released.
    let file = printed.lines().find_map(|l| l.strip_prefix("password file: ")).unwrap();
    let file = std::path::PathBuf::from(file.split(" (").next().unwrap());
    let arn = s.get("desk").await.unwrap().status.unwrap().secret_arn.expect("status.secretArn");
    let sm = s.env.secretsmanager_direct().await;
    let secret = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    let want: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want["displayPassword"].as_str().unwrap());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the password file is the user's alone");
    assert!(!printed.contains(want["displayPassword"].as_str().unwrap()), "never printed");
    assert_eq!(holder(&s, "desk").await.as_deref(), Some("user:frank"), "open holds the lock");
    wait_controller(&s, "desk", "user", "frank", MIRROR).await;
    let int = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(int.success());
    let st = child.wait().unwrap();
    assert!(st.success(), "open exits 0 after Ctrl-C: {st:?}");
    assert_eq!(holder(&s, "desk").await, None, "released on exit");
    assert!(!file.exists(), "the password file goes with the lock");
    wait_controller(&s, "desk", "none", "", MIRROR).await;
    wait_renews_until_interrupted(&s).await;
}

/// `take --wait` keeps a 3 s hold alive well past 3 s, then releases it on Ctrl-C.
async fn wait_renews_until_interrupted(s: &Scenario) {
    let ns = s.ns.as_str();
    let child = spawn(s, &["display", "take", "desk", "-n", ns, "--as", "gina", "--for", "3s", "--wait"]);
    wait_controller(s, "desk", "user", "gina", MIRROR).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let st: Value =
        serde_json::from_str(&ok(&run(s, &["display", "status", "desk", "-n", ns, "-o", "json"]), "json")).unwrap();
    assert_eq!((st["controller"].as_str(), st["holder"].as_str()), (Some("user"), Some("gina")), "renewed: {st}");
    assert_eq!(display_of(&s.get("desk").await.unwrap()), ("user".into(), "gina".into()), "mirrored, unexpired");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "--wait exits 0 after Ctrl-C: {out:?}");
    assert_eq!(holder(s, "desk").await, None, "released on exit");
}

#[tokio::test]
async fn errors_are_one_line_naming_the_object() {
    let s = desktop_scenario("plug-err").await;
    let ns = s.ns.as_str();
    fails(&run(&s, &["display", "status", "nope", "-n", ns]), "missing", &[&format!("workspace {ns}/nope not found")]);
    fails(
        &run(&s, &["display", "take", "plain", "-n", ns, "--as", "a"]),
        "no display",
        &[&format!("workspace {ns}/plain is not a display Workspace")],
    );
    fails(&run(&s, &["console", "nope", "-n", ns]), "console missing", &[&format!("workspace {ns}/nope not found")]);
    fails(
        &run(&s, &["receipt", "no-such-tenant", "--operator-namespace", s.env.var("OPERATOR_NAMESPACE")]),
        "receipt",
        &["erasure receipt of tenant no-such-tenant", "not found"],
    );
    fails(&run(&s, &["orphans", "--tenant", "no-such-tenant"]), "orphans", &["tenant no-such-tenant not found"]);
    fails(
        &run(&s, &["display", "take", "desk", "-n", ns, "--as", "robot:x"]),
        "bad identity",
        &["robot:x", "agent:<id> or user:<name>"],
    );
    // Usage errors too: one line, exit 1 (kubectl's convention), not clap's usage block and 2.
    fails(
        &run(&s, &["display", "take"]),
        "usage",
        &["required", "<WORKSPACE>", "kubectl molecule display take --help"],
    );
    // No permission: the same kubeconfig impersonating a user without any RBAC.
    let path = kubeconfig_as(&s, "nobody-at-all");
    let o = run_with(&s, &["display", "status", "desk", "-n", ns], &[("KUBECONFIG", path.to_str().unwrap())]);
    fails(&o, "forbidden", &[&format!("no permission to get workspace {ns}/desk"), "nobody-at-all"]);
    let o = run_with(&s, &["cost", "-A"], &[("KUBECONFIG", path.to_str().unwrap())]);
    fails(&o, "forbidden cost", &["no permission to list workspaces in all namespaces"]);
    let _ = std::fs::remove_file(path);
    let o = run(&s, &["completion", "bash"]);
    assert!(ok(&o, "completion").contains("kubectl-molecule"));
    let o = run(&s, &["__complete", "display", "t"]);
    assert_eq!(ok(&o, "__complete"), "take\n:4\n");
}

fn usd(s: Option<&str>) -> Usd {
    Usd::parse(s.unwrap_or("x")).unwrap_or_else(|e| panic!("price {s:?}: {e}"))
}

#[tokio::test]
async fn console_cost_and_a_stopped_workspace() {
    let mut s = Scenario::new("plug-cost", 4, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    s.apply(&s.sample("workspace-minimal.yaml", "a")).expect("apply a");
    s.apply(&s.sample("workspace-data-volume.yaml", "b")).expect("apply b");
    let a = s.wait_ready("a", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.wait_ready("b", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    console_and_ssh(&s, &a).await;
    stopped_costs_storage_and_totals_add_up(&s, &a).await;
}

/// `console` prints what moto answers GetConsoleOutput, through the fault proxy; `ssh` prints EICE.
async fn console_and_ssh(s: &Scenario, a: &Workspace) {
    let ns = s.ns.as_str();
    let id = a.status.as_ref().unwrap().instance_id.clone().unwrap();
    let direct = s.env.ec2_direct().await.get_console_output().instance_id(&id).send().await.unwrap();
    let want = aws_smithy_types::base64::decode(direct.output().unwrap_or_default()).unwrap();
    let calls = |v: &Value| v["total"]["ec2.GetConsoleOutput"].as_u64().unwrap_or(0);
    let before = calls(&s.env.fault_counts().await.unwrap());
    let got = ok(&run(s, &["console", "a", "-n", ns]), "console");
    assert!(!want.is_empty(), "moto has console output");
    assert_eq!(got, String::from_utf8_lossy(&want), "console prints moto's output");
    let after = calls(&s.env.fault_counts().await.unwrap());
    assert!(after > before, "the plugin called EC2 through AWS_ENDPOINT_URL (the fault proxy)");
    let ssh = ok(&run(s, &["ssh", "a", "-n", ns]), "ssh");
    assert!(
        ssh.contains(&format!(
            "aws ec2-instance-connect ssh --instance-id {id} --os-user ubuntu --connection-type eice"
        )),
        "{ssh}"
    );
}

/// A Stopped Workspace costs only its volumes; `cost` totals are the sums of estimatedHourlyUsd.
async fn stopped_costs_storage_and_totals_add_up(s: &Scenario, a: &Workspace) {
    let ns = s.ns.as_str();
    s.patch("a", json!({"spec": {"state": "Stopped"}})).await.unwrap();
    let stopped = s
        .wait_ws("a", "Stopped", READY, |w| w.status.as_ref().and_then(|x| x.phase) == Some(WorkspacePhase::Stopped))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let running = usd(a.status.as_ref().unwrap().estimated_hourly_usd.as_deref());
    let itype = stopped.status.as_ref().unwrap().resolved.as_ref().unwrap().instance_type.clone();
    let instance_price = Catalog::builtin().get(&itype).unwrap().hourly;
    let storage = Usd::from_nanos(running.nanos() - instance_price.nanos());
    assert_eq!(
        stopped.status.as_ref().unwrap().estimated_hourly_usd.as_deref(),
        Some(storage.to_decimal_4().as_str()),
        "stopped: storage only (running {running}, {itype} {instance_price})"
    );

    // cost: the totals are the sums of the Workspaces' estimatedHourlyUsd.
    let list = s.api().list(&kube::api::ListParams::default()).await.unwrap().items;
    let sum = list
        .iter()
        .fold(Usd::default(), |acc, w| acc + usd(w.status.as_ref().and_then(|x| x.estimated_hourly_usd.as_deref())));
    let r: Value = serde_json::from_str(&ok(&run(s, &["cost", "-n", ns, "-o", "json"]), "cost json")).unwrap();
    assert_eq!(r["workspaces"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["totalHourlyUsd"], sum.to_decimal_4(), "{r}");
    assert_eq!(r["tenants"][0]["tenant"], s.tenant.as_str());
    assert_eq!(r["tenants"][0]["hourlyUsd"], sum.to_decimal_4());
    let line = r["workspaces"].as_array().unwrap().iter().find(|l| l["name"] == "a").unwrap().clone();
    assert_eq!(
        (line["phase"].as_str(), line["hourlyUsd"].as_str()),
        (Some("Stopped"), Some(storage.to_decimal_4().as_str()))
    );
    let by_tenant: Value =
        serde_json::from_str(&ok(&run(s, &["cost", "--tenant", &s.tenant, "-o", "json"]), "tenant")).unwrap();
    assert_eq!(by_tenant["totalHourlyUsd"], sum.to_decimal_4(), "--tenant spans namespaces: {by_tenant}");
    let table = ok(&run(s, &["cost", "-n", ns]), "cost table");
    assert!(table.lines().any(|l| l.starts_with("TOTAL") && l.ends_with(&sum.to_decimal_4())), "{table}");
    let orphans = ok(&run(s, &["orphans", "--tenant", &s.tenant]), "orphans");
    assert!(orphans.contains("No orphans found."), "{orphans}");
}

/// An instance with the tenant's tags and a Workspace uid that does not exist: a real orphan.
async fn plant_orphan(s: &Scenario) -> String {
    s.launch_ghost("00000000-dead-4bad-beef-000000000001", aws_sdk_ec2::types::InstanceType::T3Micro).await
}

#[tokio::test]
async fn orphans_and_the_erasure_receipt() {
    let mut s = Scenario::new("plug-rcpt", 2, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    s.expect_orphans();
    s.apply(&s.sample("workspace-minimal.yaml", "m")).expect("apply");
    let t = s.wait_tenant_ready(Duration::from_mins(3)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.wait_ready("m", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let oob = plant_orphan(&s).await;
    s.wait_tenant("the planted orphan", Duration::from_mins(1), |t| {
        t.status.as_ref().is_some_and(|st| st.orphans.iter().any(|o| o.id == oob))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let table = ok(&run(&s, &["orphans", "--tenant", &s.tenant]), "orphans");
    let line = table.lines().find(|l| l.contains(&oob)).unwrap_or_else(|| panic!("{oob} missing from {table}"));
    assert!(line.starts_with(&s.tenant) && line.contains("Instance") && line.contains("ghost"), "{line}");
    let all: Value = serde_json::from_str(&ok(&run(&s, &["orphans", "-o", "json"]), "orphans json")).unwrap();
    assert!(
        all["orphans"].as_array().unwrap().iter().any(|o| o["id"] == oob.as_str() && o["tenant"] == s.tenant.as_str())
    );

    let uid = t.metadata.uid.clone().unwrap();
    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(Duration::from_mins(4)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let want = s.receipt(&uid).await.expect("receipt ConfigMap");
    let opns = s.env.var("OPERATOR_NAMESPACE");
    let got: Value = serde_json::from_str(&ok(
        &run(&s, &["receipt", &s.tenant, "--operator-namespace", opns, "-o", "json"]),
        "json",
    ))
    .unwrap();
    let mut got = got.as_array().unwrap().last().unwrap().clone();
    assert_eq!(got["name"], s.receipt_name(&uid));
    got.as_object_mut().unwrap().remove("name");
    assert_eq!(got, want, "the plugin shows the receipt the operator wrote");
    let text = ok(&run(&s, &["receipt", &s.tenant, "--operator-namespace", opns]), "receipt");
    let n = want["resources"].as_array().unwrap().len();
    assert!(text.contains(&format!("Confirmed:  {n}/{n} resources gone")), "{text}");
    assert!(text.contains(want["completedAt"].as_str().unwrap()), "{text}");
    assert!(text.contains(&oob), "the orphan is erased with its tenant: {text}");
}

#[tokio::test]
async fn a_take_before_the_operator_made_the_lease_creates_it() {
    // No operator: the Lease does not exist yet; the take creates it as the operator would.
    let s = Scenario::new("plug-new", 4, json!({})).await.expect("scenario");
    s.apply(&s.sample("workspace-desktop.yaml", "desk")).expect("apply desk");
    let ns = s.ns.as_str();
    ok(&run(&s, &["display", "take", "desk", "-n", ns, "--as", "alice", "--for", "1m"]), "take");
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(s.kube.clone(), ns);
    let l = leases.get("desk-display").await.expect("lease created");
    assert_eq!(
        l.metadata.labels.unwrap_or_default().get("moleculesai.app/display-lease").map(String::as_str),
        Some("true")
    );
    let owner = l.metadata.owner_references.unwrap_or_default();
    assert!(owner.iter().any(|o| o.kind == "Workspace" && o.name == "desk" && o.controller == Some(true)), "{owner:?}");
    let st: Value =
        serde_json::from_str(&ok(&run(&s, &["display", "status", "desk", "-n", ns, "-o", "json"]), "json")).unwrap();
    assert_eq!((st["controller"].as_str(), st["holder"].as_str()), (Some("user"), Some("alice")), "{st}");
    ok(&run(&s, &["display", "release", "desk", "-n", ns, "--as", "alice"]), "release");
    assert_eq!(holder(&s, "desk").await, None);
    // Without --as: the user the API server authenticates, not the kubeconfig's user entry name.
    let me = whoami(&s).await;
    ok(&run(&s, &["display", "take", "desk", "-n", ns, "--for", "1m"]), "take as myself");
    assert_eq!(holder(&s, "desk").await, Some(format!("user:{me}")));
    ok(&run(&s, &["display", "release", "desk", "-n", ns]), "release as myself");
    assert_eq!(holder(&s, "desk").await, None);
    a_force_that_cannot_tell_the_holder_takes_nothing(&s).await;
    s.delete("desk").await.unwrap();
    // Without an operator nobody removes the finalizer-less Workspace's Lease: do it here.
    let _ = leases.delete("desk-display", &kube::api::DeleteParams::default()).await;
}

/// A user who may write the Lease but not create Events: a forced take is refused before it
/// writes (the holder must be told), and the holder keeps the lock.
async fn a_force_that_cannot_tell_the_holder_takes_nothing(s: &Scenario) {
    let (ns, user) = (s.ns.as_str(), format!("{}-lease-only", s.id));
    let rule = |g: &str, r: &str, v: &[&str]| json!({"apiGroups": [g], "resources": [r], "verbs": v});
    let rules = [
        rule("moleculesai.app", "workspaces", &["get"]),
        rule("coordination.k8s.io", "leases", &["get", "create", "update"]),
    ];
    s.apply_all(&[
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "lease-only", "namespace": ns}, "rules": rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "lease-only", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease-only"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    ])
    .expect("rbac");
    ok(&run(s, &["display", "take", "desk", "-n", ns, "--as", "agent:bot", "--for", "1m"]), "agent takes");
    let kc = kubeconfig_as(s, &user);
    let o = run_with(s, &["display", "take", "desk", "-n", ns, "--force"], &[("KUBECONFIG", kc.to_str().unwrap())]);
    fails(&o, "force without events", &[&format!("no permission to create events in namespace {ns}"), "agent:bot"]);
    let o = run_with(s, &["display", "release", "desk", "-n", ns, "--force"], &[("KUBECONFIG", kc.to_str().unwrap())]);
    fails(&o, "forced release without events", &[&format!("no permission to create events in namespace {ns}")]);
    assert_eq!(holder(s, "desk").await.as_deref(), Some("agent:bot"), "the holder keeps it");
    let _ = std::fs::remove_file(kc);
    ok(&run(s, &["display", "release", "desk", "-n", ns, "--as", "agent:bot"]), "agent releases");
}
