//! Per-tenant AWS identity (issue 12), against the real API server, moto and two operator
//! processes: two Tenants with a Workspace each. Each Tenant's roles, read back from moto's IAM,
//! sit under the configured path and permissions boundary with the owner tags, and their policies
//! name only that Tenant's own secrets (moto cannot judge resource scoping: FACTS.md, so the
//! documents are what is checked); the tenant VM of A runs under A's VM profile, A's Workspace
//! under A's Workspace profile, and B likewise; deleting a Tenant deletes its roles and profiles
//! (and not the other's) and lists each in the receipt, confirmed gone.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_iam::Client as Iam;
use molecule_crds::v1alpha1::{IamIdentity, Tenant, Workspace};
use molecule_e2e::scenario::Scenario;
use molecule_operator::cloud::identities::decode_document;
use serde_json::{Value, json};

const READY: Duration = Duration::from_mins(3);
const ERASED: Duration = Duration::from_mins(4);
const POLICY: &str = "molecule-tenant";
const BOUNDARY: &str = "molecule-e2e-tenant-boundary";

/// IAM's wildcard match (`*` any run of characters, `?` one), as it applies to a Resource.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[test]
fn glob_matches_as_iam_does() {
    assert!(glob("arn:x:secret:a/ws/*", "arn:x:secret:a/ws/w-1-AbCdEf"));
    assert!(!glob("arn:x:secret:a/ws/*", "arn:x:secret:a2/ws/w-1"));
    assert!(glob("a*c", "abbbc") && !glob("a*c", "abbbd") && glob("*", ""));
}

/// The boundary policy the operators are given (created once in moto's main account).
async fn boundary(iam: &Iam) -> String {
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "ec2:CreateTags", "ssm:*",
                                       "ssmmessages:*", "ec2messages:*"], "Resource": "*"}]});
    if let Ok(out) = iam.create_policy().policy_name(BOUNDARY).policy_document(doc.to_string()).send().await {
        out.policy().and_then(|p| p.arn()).unwrap().to_owned()
    } else {
        let all = iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap();
        all.policies().iter().find(|p| p.policy_name() == Some(BOUNDARY)).and_then(|p| p.arn()).unwrap().to_owned()
    }
}

/// The inline policy of `role`, as JSON (IAM may answer it URL-encoded).
async fn policy(iam: &Iam, role: &str) -> Value {
    let out = iam.get_role_policy().role_name(role).policy_name(POLICY).send().await.unwrap();
    let text = out.policy_document();
    let decoded = decode_document(text);
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("{e}: {decoded}"))
}

/// Every Resource of the statements that allow `secretsmanager:GetSecretValue`.
fn secret_resources(doc: &Value) -> Vec<String> {
    let as_list = |v: &Value| match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    };
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| as_list(&s["Action"]).iter().any(|a| a == "secretsmanager:GetSecretValue" || a.contains('*')))
        .flat_map(|s| as_list(&s["Resource"]))
        .collect()
}

struct Side {
    tenant: Tenant,
    ws: Workspace,
    vm: IamIdentity,
    wsid: IamIdentity,
}

impl Side {
    fn bundle(&self) -> String {
        self.tenant.status.as_ref().and_then(|s| s.secret_arn.clone()).expect("status.secretArn")
    }

    fn ws_secret(&self) -> String {
        self.ws.status.as_ref().and_then(|s| s.secret_arn.clone()).expect("Workspace status.secretArn")
    }
}

async fn provision(s: &Scenario) -> Side {
    let tenant = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let ws = s.wait_ready("w1", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let ids = tenant.status.as_ref().and_then(|x| x.identity.clone()).expect("status.identity");
    Side { vm: ids.vm.expect("identity.vm"), wsid: ids.workspace.expect("identity.workspace"), tenant, ws }
}

/// The role and profile of `id` in moto: path, boundary, owner tags, the profile holds the role.
async fn check_entities(iam: &Iam, s: &Scenario, side: &Side, id: &IamIdentity, boundary: &str) {
    let uid = side.tenant.metadata.uid.clone().unwrap();
    let role = iam.get_role().role_name(&id.role).send().await.unwrap();
    let role = role.role().unwrap();
    let path = format!("/molecule/{}/{}/", s.operator_id, s.env.var("MOLECULE_ENV"));
    assert_eq!(role.path(), path, "{}: the operator's own path", id.role);
    assert_eq!(role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()), Some(boundary));
    let tags: std::collections::BTreeMap<_, _> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    for (k, v) in [
        ("moleculesai.app/managed-by", s.operator_id.as_str()),
        ("moleculesai.app/owner-uid", uid.as_str()),
        ("moleculesai.app/owner-kind", "Tenant"),
        ("moleculesai.app/tenant", s.tenant.as_str()),
        ("Role", "tenant"),
        ("Name", &format!("tenant-{}", s.tenant)),
    ] {
        assert_eq!(tags.get(k).copied(), Some(v), "{} tag {k}: {tags:?}", id.role);
    }
    let trust = role.assume_role_policy_document().unwrap_or_default();
    assert!(decode_document(trust).contains("ec2.amazonaws.com"), "trust: {trust}");
    let p = iam.get_instance_profile().instance_profile_name(&id.instance_profile).send().await.unwrap();
    let roles: Vec<&str> =
        p.instance_profile().unwrap().roles().iter().map(aws_sdk_iam::types::Role::role_name).collect();
    assert_eq!(roles, vec![id.role.as_str()]);
}

/// The instance profile an instance runs under (the name, from its ARN).
async fn profile_of(s: &Scenario, instance: &str) -> String {
    let ec2 = s.env.ec2_direct().await;
    let out = ec2.describe_instances().instance_ids(instance).send().await.unwrap();
    let i = out.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).next().unwrap();
    let arn = i.iam_instance_profile().and_then(|p| p.arn()).unwrap_or_default();
    arn.rsplit('/').next().unwrap_or_default().to_owned()
}

/// A's policies name A's secrets and nothing of B's.
async fn check_scoping(iam: &Iam, mine: &Side, theirs: &Side) {
    let vm = secret_resources(&policy(iam, &mine.vm.role).await);
    assert_eq!(vm, vec![mine.bundle()], "the VM reads exactly its own bundle");
    let ws = secret_resources(&policy(iam, &mine.wsid.role).await);
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert!(
        glob(&ws[0], &mine.ws_secret()),
        "{} does not cover the Workspace's own secret {}",
        ws[0],
        mine.ws_secret()
    );
    for r in vm.iter().chain(&ws) {
        for other in [theirs.bundle(), theirs.ws_secret()] {
            assert!(!glob(r, &other), "{r} matches the other tenant's {other}");
        }
    }
    assert!(!glob(&ws[0], &mine.bundle()), "Workspaces never read the bundle");
}

async fn receipt_has_identities(s: &Scenario, uid: &str, side: &Side) {
    let receipt = s.receipt(uid).await.expect("receipt");
    let resources = receipt["resources"].as_array().cloned().unwrap_or_default();
    for id in [&side.vm, &side.wsid] {
        for (kind, name) in [("IamRole", &id.role), ("InstanceProfile", &id.instance_profile)] {
            let ok = resources
                .iter()
                .any(|e| e["kind"] == kind && e["id"] == name.as_str() && e["confirmedGoneAt"].as_str().is_some());
            assert!(ok, "{kind} {name} confirmed gone in {receipt:#}");
        }
    }
}

async fn gone(iam: &Iam, id: &IamIdentity) -> bool {
    let role = iam.get_role().role_name(&id.role).send().await;
    let profile = iam.get_instance_profile().instance_profile_name(&id.instance_profile).send().await;
    role.is_err() && profile.is_err()
}

#[tokio::test]
async fn each_tenant_runs_under_its_own_identity_naming_only_its_own_secrets() {
    let iam = molecule_e2e::harness::TestEnv::load().unwrap().iam_direct().await;
    let boundary = boundary(&iam).await;
    let mut a = Scenario::new("iama", 2, json!({})).await.unwrap();
    let mut b = Scenario::new("iamb", 2, json!({})).await.unwrap();
    for s in [&mut a, &mut b] {
        s.start_operator(&[("TENANT_IAM_PERMISSIONS_BOUNDARY", &boundary)]).unwrap();
        s.apply(&s.sample("workspace-minimal.yaml", "w1")).unwrap();
    }
    let (sa, sb) = (provision(&a).await, provision(&b).await);
    for (s, side) in [(&a, &sa), (&b, &sb)] {
        check_entities(&iam, s, side, &side.vm, &boundary).await;
        check_entities(&iam, s, side, &side.wsid, &boundary).await;
        let vm = side.tenant.status.as_ref().and_then(|x| x.instance_id.clone()).unwrap();
        assert_eq!(profile_of(s, &vm).await, side.vm.instance_profile, "the tenant VM's profile");
        let wi = side.ws.status.as_ref().and_then(|x| x.instance_id.clone()).unwrap();
        assert_eq!(profile_of(s, &wi).await, side.wsid.instance_profile, "the Workspace's profile");
    }
    assert_ne!(sa.vm.role, sb.vm.role);
    assert_ne!(sa.wsid.instance_profile, sb.wsid.instance_profile);
    check_scoping(&iam, &sa, &sb).await;
    check_scoping(&iam, &sb, &sa).await;

    // Deleting A deletes A's identities, lists them in A's receipt, and leaves B's.
    let uid_a = sa.tenant.metadata.uid.clone().unwrap();
    a.delete_tenant().await.unwrap();
    a.wait_tenant_gone(ERASED).await.unwrap_or_else(|e| panic!("{e}\n{}", a.log()));
    assert!(gone(&iam, &sa.vm).await && gone(&iam, &sa.wsid).await, "A's roles and profiles are deleted");
    assert!(!gone(&iam, &sb.vm).await && !gone(&iam, &sb.wsid).await, "B's are untouched");
    receipt_has_identities(&a, &uid_a, &sa).await;
    let uid_b = sb.tenant.metadata.uid.clone().unwrap();
    b.delete_tenant().await.unwrap();
    b.wait_tenant_gone(ERASED).await.unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
    assert!(gone(&iam, &sb.vm).await && gone(&iam, &sb.wsid).await);
    receipt_has_identities(&b, &uid_b, &sb).await;
}
