//! Workspace scenarios against the real API server, moto and the operator process: the samples
//! reach Ready with what API.md implies, display stacks stay on localhost, delete leaves nothing.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::many_single_char_names)]

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use molecule_crds::catalog::Catalog;
use molecule_crds::images::ImageCatalog;
use molecule_crds::resolve::resolve;
use molecule_crds::v1alpha1::{Market, Workspace};
use molecule_e2e::scenario::{Scenario, condition, tags, uid};
use serde_json::json;

const READY: Duration = Duration::from_secs(90);

const SAMPLES: &[(&str, &str)] = &[
    ("workspace-minimal.yaml", "minimal"),
    ("workspace-sized.yaml", "sized"),
    ("workspace-arm64.yaml", "arm64"),
    ("workspace-gpu.yaml", "gpu"),
    ("workspace-spot.yaml", "spot"),
    ("workspace-data-volume.yaml", "data"),
    ("workspace-desktop.yaml", "desktop"),
    ("workspace-gpu-desktop.yaml", "gpu-desktop"),
    ("workspace-recreate.yaml", "recreate"),
];

fn images(s: &Scenario) -> ImageCatalog {
    let text = std::fs::read_to_string(s.env.var("IMAGE_CATALOG_FILE")).expect("image catalog");
    ImageCatalog::from_yaml(&text, Some(s.env.var("EC2_AMI"))).expect("parse image catalog")
}

async fn user_data(s: &Scenario, id: &str) -> String {
    let out = s
        .env
        .ec2_direct()
        .await
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user-data");
    let b64 = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    String::from_utf8(aws_smithy_types::base64::decode(b64).expect("base64")).expect("utf-8")
}

/// Checks one Ready Workspace against moto: the machine, its volumes, tags, group and records.
async fn check_machine(s: &Scenario, w: &Workspace) {
    let name = w.metadata.name.clone().unwrap();
    let st = w.status.clone().unwrap();
    let want = resolve(&w.spec, &Catalog::builtin(), &images(s)).expect("sample resolves");
    assert_eq!(st.resolved.as_ref(), Some(&want.compute), "{name}: status.resolved");
    assert_eq!(st.estimated_hourly_usd.as_deref(), Some(want.hourly.to_decimal_4().as_str()));
    let id = st.instance_id.clone().expect("instanceId");
    let all = s.instances(&uid(w)).await;
    let alive: Vec<_> =
        all.iter().filter(|i| i.state().and_then(|x| x.name()).unwrap().as_str() != "terminated").collect();
    assert_eq!(alive.len(), 1, "{name}: exactly one instance");
    let i = alive[0];
    assert_eq!(i.instance_id(), Some(id.as_str()));
    assert_eq!(i.instance_type().unwrap().as_str(), want.compute.instance_type, "{name}: type");
    assert_eq!(i.image_id(), Some(want.compute.ami_id.as_str()), "{name}: AMI");
    let md = i.metadata_options().expect("metadata options");
    assert_eq!(md.http_tokens().unwrap().as_str(), "required", "{name}: IMDSv2 required");
    assert_eq!(
        i.instance_lifecycle().map(|l| l.as_str().to_owned()),
        (want.compute.market == Market::Spot).then(|| "spot".to_owned()),
        "{name}: market"
    );
    let t = tags(i);
    let ns = w.metadata.namespace.clone().unwrap();
    let expect = [
        ("moleculesai.app/managed-by", s.operator_id.clone()),
        ("moleculesai.app/env", "dev".to_owned()),
        ("moleculesai.app/tenant", s.tenant.clone()),
        ("moleculesai.app/owner-kind", "Workspace".to_owned()),
        ("moleculesai.app/owner-uid", uid(w)),
        ("moleculesai.app/owner", format!("{ns}/{name}")),
        ("Role", "workspace".to_owned()),
        ("Name", format!("ws-{}-{ns}-{name}", s.tenant)),
    ];
    for (k, v) in &expect {
        assert_eq!(t.get(*k), Some(v), "{name}: instance tag {k}");
    }

    // Volumes: the root volume is encrypted gp3 with the resolved size, IOPS and throughput and
    // the owner's tags; the data volume likewise, attached.
    let ec2 = s.env.ec2_direct().await;
    let vols = ec2
        .describe_volumes()
        .filters(Filter::builder().name("attachment.instance-id").values(&id).build())
        .send()
        .await
        .unwrap();
    let root = vols
        .volumes()
        .iter()
        .find(|v| v.attachments().iter().any(|a| a.device() == i.root_device_name()))
        .expect("root volume");
    assert_eq!(root.encrypted(), Some(true), "{name}: root encrypted");
    assert_eq!(root.volume_type().unwrap().as_str(), "gp3");
    assert_eq!(root.size(), Some(i32::try_from(want.compute.root_gb).unwrap()), "{name}: rootGb");
    // moto drops a root volume's IOPS and throughput, so check what the operator sent.
    let sent = s.sent("ec2.RunInstances", &format!("ClientToken={}", st.launch.as_ref().unwrap().token)).await;
    assert!(sent.contains(&format!("BlockDeviceMapping.1.Ebs.Iops={}", want.compute.iops)), "{name}: iops in {sent}");
    assert!(
        sent.contains(&format!("BlockDeviceMapping.1.Ebs.Throughput={}", want.compute.throughput_mi_bps)),
        "{name}: throughput"
    );
    assert!(
        sent.contains("BlockDeviceMapping.1.Ebs.Encrypted=true")
            && sent.contains("MetadataOptions.HttpTokens=required")
    );
    let root_tags: std::collections::BTreeMap<_, _> =
        root.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    assert_eq!(root_tags.get("moleculesai.app/owner-uid"), Some(&uid(w)), "{name}: root volume tagged at creation");
    if let Some(gb) = want.compute.data_gb {
        let data_id = st.data_volume_id.clone().expect("dataVolumeId");
        let data =
            vols.volumes().iter().find(|v| v.volume_id() == Some(data_id.as_str())).expect("data volume attached");
        assert_eq!(data.size(), Some(i32::try_from(gb).unwrap()));
        assert_eq!(data.encrypted(), Some(true));
        assert!(data.tags().iter().any(|t| t.key() == Some("moleculesai.app/volume") && t.value() == Some("data")));
    }

    check_network_and_boot(s, w, &want.compute, &id).await;
}

/// The group, the user-data and the DNS records of a Ready Workspace.
async fn check_network_and_boot(
    s: &Scenario,
    w: &Workspace,
    want: &molecule_crds::v1alpha1::ResolvedCompute,
    id: &str,
) {
    let name = w.metadata.name.clone().unwrap();
    let st = w.status.clone().unwrap();
    let ec2 = s.env.ec2_direct().await;
    // Security group: ingress only from the EIC endpoint group on 22 and from the Tenant's group on
    // the agent port 8000 (docs/api.md, Network); never 0.0.0.0/0 inbound.
    let sg_id = st.security_group_id.clone().expect("securityGroupId");
    let sg = ec2.describe_security_groups().group_ids(&sg_id).send().await.unwrap();
    let g = &sg.security_groups()[0];
    let tenant_sg = s.get_tenant().await.and_then(|t| t.status?.security_group_id).expect("the Tenant's group");
    for p in g.ip_permissions() {
        assert!(p.ip_ranges().is_empty() && p.ipv6_ranges().is_empty(), "{name}: CIDR ingress {p:?}");
        let from = p.user_id_group_pairs()[0].group_id();
        match (p.from_port(), p.to_port()) {
            (Some(22), Some(22)) => assert_eq!(from, Some(s.env.var("EIC_ENDPOINT_SG_ID")), "{name}: SSH source"),
            (Some(8000), Some(8000)) => assert_eq!(from, Some(tenant_sg.as_str()), "{name}: agent port source"),
            ports => panic!("{name}: unexpected ingress on {ports:?}: {p:?}"),
        }
    }
    assert!(
        g.ip_permissions().iter().any(|p| p.from_port() == Some(8000)
            && p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(tenant_sg.as_str()))),
        "{name}: the Tenant's group reaches the agent port"
    );
    assert!(
        g.tags().iter().any(|t| t.key() == Some("moleculesai.app/owner-uid") && t.value() == Some(uid(w).as_str()))
    );

    // User-data: the display stack exactly when a display is asked for, bound to localhost.
    let ud = user_data(s, id).await;
    assert!(ud.contains("moleculesai.app/boot ready"));
    if want.display_mode.is_enabled() {
        assert!(ud.contains("molecule-display-health"), "{name}: display stack");
        assert!(ud.contains("127.0.0.1:6080") || ud.contains("127.0.0.1:8443"), "{name}: localhost only");
        let d = st.display.as_ref().expect("status.display");
        assert_eq!(serde_json::to_value(d.status).unwrap(), "ready");
        assert_eq!(d.controller, "none");
    } else {
        assert!(!ud.contains("Xvfb") && !ud.contains("dcv"), "{name}: no display stack");
        assert!(st.display.is_none());
    }

    // DNS: the A record and its ownership TXT.
    let host = st.hostname.clone().expect("hostname");
    let recs = s.records(&host).await;
    assert!(
        recs.iter().any(|(t, v)| t == "A" && v == &vec![st.private_ip.clone().unwrap()]),
        "{name}: A record {recs:?}"
    );
    assert!(recs.iter().any(|(t, v)| t == "TXT" && v[0].contains(&uid(w))), "{name}: ownership TXT {recs:?}");
}

#[tokio::test]
async fn every_sample_reaches_ready_as_api_md_implies_and_delete_leaves_nothing() {
    let mut s = Scenario::new("samples", 4, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    for (file, name) in SAMPLES {
        s.apply(&s.sample(file, name)).expect("apply sample");
    }
    s.apply(&s.sample("workspace-stopped.yaml", "stopped")).expect("apply stopped");
    // kubectl wait works on the Ready condition.
    let out = s
        .env
        .kubectl(&["wait", "-n", &s.ns, "--for=condition=Ready", "--timeout=90s", "workspace/minimal"], None)
        .expect("kubectl wait");
    assert!(out.status.success(), "kubectl wait: {}", String::from_utf8_lossy(&out.stderr));
    let mut ready = Vec::new();
    for (_, name) in SAMPLES {
        let w = s.wait_ready(name, READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        check_machine(&s, &w).await;
        ready.push(w);
    }
    let stopped = s
        .wait_ws("stopped", "phase Stopped", READY, |w| {
            w.status.as_ref().and_then(|x| x.phase).is_some_and(|p| format!("{p:?}") == "Stopped")
        })
        .await
        .expect("stopped sample");
    assert!(s.alive(&uid(&stopped)).await.is_empty(), "a Workspace created Stopped launches nothing");

    // Delete everything: instance, group, volumes and records go, then the object.
    for (_, name) in SAMPLES {
        s.delete(name).await.expect("delete");
    }
    s.delete("stopped").await.expect("delete");
    for w in &ready {
        let name = w.metadata.name.clone().unwrap();
        s.wait_gone(&name, READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        let host = w.status.as_ref().and_then(|x| x.hostname.clone());
        let left = s.leftovers(&uid(w), host.as_deref()).await;
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    }
}

#[tokio::test]
async fn the_display_lease_is_kept_and_mirrored() {
    let mut s = Scenario::new("lease", 4, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    s.apply(&s.sample("workspace-desktop.yaml", "desk")).expect("apply");
    s.wait_ready("desk", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(s.kube.clone(), &s.ns);
    let lease = leases.get("desk-display").await.expect("lease exists");
    assert!(lease.spec.as_ref().and_then(|x| x.holder_identity.clone()).is_none(), "the operator never holds it");
    let now = jiff::Timestamp::now();
    let patch = json!({ "spec": { "holderIdentity": "user:alice", "leaseDurationSeconds": 30, "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string() } });
    leases
        .patch("desk-display", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch))
        .await
        .expect("take lease");
    let w = s
        .wait_ws("desk", "display controlled by user alice", READY, |w| {
            w.status
                .as_ref()
                .and_then(|x| x.display.as_ref())
                .is_some_and(|d| d.controller == "user" && d.controlled_by == "alice")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(w.status.unwrap().display.unwrap().expires_at.is_some());
    // Expired: reads as none again, without anyone touching the Lease.
    s.wait_ws("desk", "expired lease reads as none", Duration::from_mins(1), |w| {
        w.status.as_ref().and_then(|x| x.display.as_ref()).is_some_and(|d| d.controller == "none")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.delete("desk").await.unwrap();
    s.wait_gone("desk", READY).await.unwrap();
    assert!(leases.get_opt("desk-display").await.unwrap().is_none(), "lease removed with the Workspace");
}

#[tokio::test]
async fn rejections_name_the_field_and_create_nothing() {
    let mut s = Scenario::new("reject", 1, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    let cases = [
        (
            "gpu",
            json!({"runtime": "codex", "compute": {"gpu": {"type": "T4", "count": 1}}}),
            "QuotaExceeded",
            "spec.compute.gpu",
        ),
        (
            "desk",
            json!({"runtime": "codex", "compute": {"display": {"mode": "desktop-control"}}}),
            "QuotaExceeded",
            "spec.compute.display.mode",
        ),
        (
            "arch",
            json!({"runtime": "codex", "compute": {"instanceType": "t3.medium", "os": {"arch": "arm64"}}}),
            "ArchMismatch",
            "spec.compute.os.arch",
        ),
        (
            "unknown",
            json!({"runtime": "codex", "compute": {"instanceType": "z9.huge"}}),
            "UnknownInstanceType",
            "spec.compute.instanceType",
        ),
        (
            "gpumix",
            json!({"runtime": "codex", "compute": {"instanceType": "t3.large", "gpu": {"type": "T4", "count": 1}}}),
            "GpuMismatch",
            "spec.compute.gpu",
        ),
        (
            "big",
            json!({"runtime": "codex", "compute": {"volume": {"rootGb": 100}}}),
            "QuotaExceeded",
            "spec.compute.volume.rootGb",
        ),
    ];
    for (name, spec, _, _) in &cases {
        s.apply(&s.workspace(name, spec.clone())).expect("apply");
    }
    // Namespace binding and a missing tenant.
    let other_ns = format!("{}-other", s.ns);
    s.env.kubectl(&["create", "namespace", &other_ns], None).expect("namespace");
    let mut foreign = s.workspace("foreign", json!({"runtime": "codex"}));
    foreign["metadata"]["namespace"] = json!(other_ns);
    s.apply(&foreign).expect("apply foreign");
    let mut orphan = s.workspace("orphan", json!({"runtime": "codex"}));
    orphan["spec"]["tenant"] = json!(format!("{}-nope", s.tenant));
    s.apply(&orphan).expect("apply orphan");

    for (name, _, reason, field) in &cases {
        let w = s
            .wait_ws(name, reason, READY, |w| condition(w, "Admitted").is_some_and(|c| c.0 == "False"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        let (_, r, msg) = condition(&w, "Admitted").unwrap();
        assert_eq!(&r, reason, "{name}");
        assert!(msg.contains(field), "{name}: message {msg:?} names {field}");
        assert_eq!(w.status.as_ref().and_then(|x| x.phase).map(|p| format!("{p:?}")).as_deref(), Some("Pending"));
        assert!(s.leftovers(&uid(&w), None).await.is_empty(), "{name}: nothing in AWS");
        let ev = s.events(name).await;
        assert!(ev.iter().any(|(t, r, _)| t == "Warning" && r == reason), "{name}: warning event, got {ev:?}");
    }
    let api: kube::Api<Workspace> = kube::Api::namespaced(s.kube.clone(), &other_ns);
    let w = molecule_e2e::harness::wait_for("foreign refused", READY, || async {
        api.get_opt("foreign").await.ok().flatten().filter(|w| condition(w, "Admitted").is_some())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(condition(&w, "Admitted").unwrap().1, "NamespaceNotAllowed");
    assert!(s.leftovers(&uid(&w), None).await.is_empty());
    let w = s.wait_ws("orphan", "TenantNotFound", READY, |w| condition(w, "Admitted").is_some()).await.unwrap();
    assert_eq!(condition(&w, "Admitted").unwrap().1, "TenantNotFound");
    // Two fit the tier-1 count limit of 2; a third is refused with the count quota.
    for n in ["a1", "a2", "a3"] {
        s.apply(&s.workspace(n, json!({"runtime": "codex", "compute": {"instanceType": "t3.small"}}))).unwrap();
    }
    let mut admitted = 0;
    for n in ["a1", "a2", "a3"] {
        let w = s.wait_ws(n, "decided", READY, |w| condition(w, "Admitted").is_some()).await.unwrap();
        if condition(&w, "Admitted").unwrap().0 == "True" {
            admitted += 1;
        } else {
            assert!(condition(&w, "Admitted").unwrap().2.contains("maxWorkspaces"));
        }
    }
    assert_eq!(admitted, 2, "exactly two of three admitted under maxWorkspaces 2");
}
