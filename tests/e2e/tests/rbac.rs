//! Least privilege of the operator's identity, against the real API server with the chart's RBAC
//! and Lease admission policy applied by the test world (tests/e2e/testenv/rbac.sh): the operator's
//! ServiceAccount (the world's operator kubeconfig) cannot create, patch, update or delete another
//! Lease (kube-system's or one in its own namespace), yet can still write its leader Lease and
//! create and delete display Leases. The operator's own display and leader scenarios
//! (workspace.rs, leader.rs) run under the same identity and policy.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use molecule_e2e::harness::{TestEnv, unique};
use molecule_e2e::ids::uuid_v4;
use serde_json::json;

const OPERATOR_NS: &str = "molecule-system";
const POLICY: &str = "molecule-operator-leases";

/// A client with the operator's ServiceAccount token.
async fn operator_client(env: &TestEnv) -> Client {
    let kc = kube::config::Kubeconfig::read_from(env.var("TESTENV_OPERATOR_KUBECONFIG")).expect("operator kubeconfig");
    let cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.expect("config");
    Client::try_from(cfg).expect("client")
}

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        spec: Some(LeaseSpec { holder_identity: Some(holder.into()), ..LeaseSpec::default() }),
    }
}

/// A display Lease as the operator makes it: `<ws>-display`, labelled, controlled by Workspace `ws`.
fn display_lease(ws: &str) -> Lease {
    let mut l = lease(&format!("{ws}-display"), "");
    l.spec = Some(LeaseSpec::default());
    l.metadata.labels = Some([("moleculesai.app/display-lease".to_owned(), "true".to_owned())].into());
    l.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "moleculesai.app/v1alpha1".into(),
        kind: "Workspace".into(),
        name: ws.into(),
        uid: uuid_v4(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    l
}

/// The refusal's (code, message), panicking if the call was accepted.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// Refused by the Lease admission policy (RBAC let it through).
fn refused_by_policy<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    let (code, msg) = refused(what, r);
    assert_eq!(code, 403, "{what}: {msg}");
    assert!(msg.contains(POLICY) && msg.contains("may write only its leader Lease"), "{what}: {msg}");
}

/// Refused by RBAC (the verb is not granted at all).
fn refused_by_rbac<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    let (code, msg) = refused(what, r);
    assert_eq!(code, 403, "{what}: {msg}");
    assert!(
        msg.contains("system:serviceaccount:molecule-system:molecule-operator") && msg.contains("cannot"),
        "{what}: {msg}"
    );
}

fn holder(l: &Lease) -> Option<String> {
    l.spec.as_ref().and_then(|s| s.holder_identity.clone())
}

#[tokio::test]
async fn the_operator_cannot_write_kube_system_leases() {
    let env = TestEnv::load().unwrap();
    let admin = env.kube().await.unwrap();
    let op = operator_client(&env).await;
    let name = unique("rbac-victim");
    let admin_ks: Api<Lease> = Api::namespaced(admin.clone(), "kube-system");
    let op_ks: Api<Lease> = Api::namespaced(op.clone(), "kube-system");
    admin_ks.create(&PostParams::default(), &lease(&name, "kube-controller-manager")).await.unwrap();

    let steal = json!({"spec": {"holderIdentity": "molecule-operator"}});
    refused_by_rbac("patch", op_ks.patch(&name, &PatchParams::default(), &Patch::Merge(&steal)).await);
    let mut taken = admin_ks.get(&name).await.unwrap();
    taken.spec.as_mut().unwrap().holder_identity = Some("molecule-operator".into());
    refused_by_rbac("update", op_ks.replace(&name, &PostParams::default(), &taken).await);
    // create and delete are granted cluster-wide (display Leases): the policy refuses them here.
    refused_by_policy("create", op_ks.create(&PostParams::default(), &lease(&unique("rbac-new"), "x")).await);
    refused_by_policy("delete", op_ks.delete(&name, &DeleteParams::default()).await);
    // A display-shaped name without the label and owner, or a look-alike, is no display Lease.
    let mut bare = display_lease("kube-scheduler");
    bare.metadata.owner_references = None;
    refused_by_policy("create unowned -display", op_ks.create(&PostParams::default(), &bare).await);
    let mut wrong = display_lease("kube-scheduler");
    wrong.metadata.name = Some("kube-scheduler".into());
    refused_by_policy("create a non -display name", op_ks.create(&PostParams::default(), &wrong).await);

    let after = admin_ks.get(&name).await.expect("the victim Lease survives");
    assert_eq!(holder(&after).as_deref(), Some("kube-controller-manager"), "the victim Lease was not changed");
    // The policy binds the operator only: the admin still writes kube-system Leases.
    admin_ks.patch(&name, &PatchParams::default(), &Patch::Merge(&steal)).await.expect("admin patch");
    admin_ks.delete(&name, &DeleteParams::default()).await.expect("admin delete");
}

#[tokio::test]
async fn the_operator_writes_only_its_leader_lease_in_its_namespace() {
    let env = TestEnv::load().unwrap();
    let admin: Api<Lease> = Api::namespaced(env.kube().await.unwrap(), OPERATOR_NS);
    let op: Api<Lease> = Api::namespaced(operator_client(&env).await, OPERATOR_NS);

    // Its leader Lease: create, read, update (a PUT with the resourceVersion read), delete.
    let leader = format!("{}-leader", unique("e2e-rbac"));
    op.create(&PostParams::default(), &lease(&leader, "me")).await.expect("create the leader Lease");
    let mut l = op.get(&leader).await.expect("get the leader Lease");
    l.spec.as_mut().unwrap().holder_identity = Some("me-too".into());
    op.replace(&leader, &PostParams::default(), &l).await.expect("update the leader Lease");
    op.delete(&leader, &DeleteParams::default()).await.expect("delete the leader Lease");

    // Any other Lease of its namespace: neither created nor updated nor deleted.
    let other = unique("rbac-other");
    refused_by_policy("create another", op.create(&PostParams::default(), &lease(&other, "x")).await);
    admin.create(&PostParams::default(), &lease(&other, "someone")).await.unwrap();
    let mut o = admin.get(&other).await.unwrap();
    o.spec.as_mut().unwrap().holder_identity = Some("molecule-operator".into());
    refused_by_policy("update another", op.replace(&other, &PostParams::default(), &o).await);
    refused_by_policy("delete another", op.delete(&other, &DeleteParams::default()).await);
    assert_eq!(holder(&admin.get(&other).await.unwrap()).as_deref(), Some("someone"));
    admin.delete(&other, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn the_operator_creates_and_deletes_display_leases_but_never_writes_one() {
    let env = TestEnv::load().unwrap();
    let ns = unique("rbac-display");
    let out = env.kubectl(&["create", "namespace", &ns], None).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let op: Api<Lease> = Api::namespaced(operator_client(&env).await, &ns);

    let l = op.create(&PostParams::default(), &display_lease("desk")).await.expect("create a display Lease");
    assert_eq!(l.metadata.name.as_deref(), Some("desk-display"));
    // The name must be its owner's: desk's Lease named for another Workspace is refused.
    let mut misnamed = display_lease("desk");
    misnamed.metadata.name = Some("other-display".into());
    refused_by_policy(
        "a display Lease named for another Workspace",
        op.create(&PostParams::default(), &misnamed).await,
    );
    // Holding it is for users and agents, not the operator.
    let hold = json!({"spec": {"holderIdentity": "user:operator"}});
    refused_by_rbac(
        "patch a display Lease",
        op.patch("desk-display", &PatchParams::default(), &Patch::Merge(&hold)).await,
    );
    op.delete("desk-display", &DeleteParams::default()).await.expect("delete the display Lease");
}
