//! `orphan-bench [N]`: what one orphan scan costs with N orphans of each kind the scan lists itself
//! (Secrets Manager secrets, Route 53 names with an ownership TXT, Cloudflare tunnels and
//! Cloudflare ownership records), all of a deleted tenant. Seeds them straight into moto and the
//! Cloudflare fake, starts an operator that scans every 10 s with its fleet cache refresh pushed
//! far out, and counts the calls between the end of the second scan and the end of the third
//! (from the operator's own metrics). EC2 costs a scan nothing: it reads the fleet cache.
//! Prints one Markdown section. Loops are bounded by N and by timeouts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use futures::StreamExt;
use molecule_e2e::scenario::Scenario;
use serde_json::json;

/// How long the scans may take to show up.
const LIMIT: Duration = Duration::from_mins(10);

type Calls = BTreeMap<String, f64>;

/// Calls so far, by `service operation` (AWS) and `cloudflare operation`.
async fn calls(s: &Scenario) -> Calls {
    let url = format!("http://{}/metrics", s.metrics_addr);
    let Ok((_, body)) = molecule_e2e::harness::http_text("GET", &url).await else { return Calls::new() };
    let label =
        |l: &str, k: &str| l.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);
    let mut out = Calls::new();
    for l in body.lines() {
        let key = if l.starts_with("molecule_aws_calls_total{") {
            format!("{} {}", label(l, "service").unwrap_or_default(), label(l, "operation").unwrap_or_default())
        } else if l.starts_with("molecule_cloudflare_calls_total{") {
            format!("cloudflare {}", label(l, "operation").unwrap_or_default())
        } else {
            continue;
        };
        let v: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(key).or_default() += v;
    }
    out
}

fn scans(s: &Scenario) -> usize {
    s.log().matches("orphan scan finished").count()
}

async fn wait_scans(s: &Scenario, n: usize) -> Result<(), String> {
    let started = Instant::now();
    while scans(s) < n {
        if started.elapsed() > LIMIT {
            return Err(format!("only {} scans after {LIMIT:?}\n{}", scans(s), s.log()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn mark(s: &Scenario, i: usize) -> String {
    format!("heritage=molecule-operator,managed-by={},env=dev,owner-kind=Tenant,owner-uid=dead-{i}", s.operator_id)
}

async fn seed(s: &Scenario, n: usize) -> Result<(), String> {
    let sm = s.env.secretsmanager_direct().await;
    let op = s.operator_id.clone();
    let created = futures::stream::iter(0..n)
        .map(|i| {
            let (sm, op) = (sm.clone(), op.clone());
            async move {
                let mut c = sm.create_secret().name(format!("{op}/dev/tenants/gone-{i}/bootstrap")).secret_string("{}");
                for (k, v) in [
                    ("moleculesai.app/managed-by", op.clone()),
                    ("moleculesai.app/env", "dev".into()),
                    ("moleculesai.app/tenant", format!("gone-{i}")),
                    ("moleculesai.app/owner-kind", "Tenant".into()),
                    ("moleculesai.app/owner-uid", format!("dead-{i}")),
                ] {
                    c = c.tags(aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build());
                }
                c.send().await.is_ok()
            }
        })
        .buffer_unordered(8)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    if created != n {
        return Err(format!("seeded {created} of {n} secrets"));
    }
    let r53 = s.env.route53_direct().await;
    let zone = s.env.var("WORKSPACE_HOSTED_ZONE_ID").to_owned();
    let domain = s.env.var("WORKSPACE_DOMAIN").to_owned();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut changes = Vec::new();
        for &i in chunk {
            let name = format!("w{i}.gone-{i}-{}.{domain}", s.id);
            for (t, v) in [(RrType::A, "10.0.0.1".to_owned()), (RrType::Txt, format!("\"{}\"", mark(s, i)))] {
                let set = ResourceRecordSet::builder()
                    .name(&name)
                    .r#type(t)
                    .ttl(60)
                    .resource_records(ResourceRecord::builder().value(v).build().map_err(|e| e.to_string())?)
                    .build()
                    .map_err(|e| e.to_string())?;
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(set)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let batch = ChangeBatch::builder().set_changes(Some(changes)).build().map_err(|e| e.to_string())?;
        r53.change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    let account = s.env.var("CLOUDFLARE_ACCOUNT_ID").to_owned();
    let cfzone = s.env.var("CLOUDFLARE_ZONE_ID").to_owned();
    for i in 0..n {
        let t = json!({"name": format!("{op}.dev.gone-{i}"), "config_src": "cloudflare"});
        s.env
            .cloudflare("POST", &format!("/accounts/{account}/cfd_tunnel"), Some(t))
            .await
            .map_err(|e| e.to_string())?;
        let r = json!({"type": "TXT", "name": format!("_molecule-owner.gone-{i}-{}.moleculesai.test", s.id), "content": mark(s, i), "ttl": 1});
        s.env.cloudflare("POST", &format!("/zones/{cfzone}/dns_records"), Some(r)).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn bench(n: usize) -> Result<String, String> {
    let mut s = Scenario::new("orphbench", 4, json!({})).await.map_err(|e| e.to_string())?;
    s.expect_orphans();
    let seeding = Instant::now();
    seed(&s, n).await?;
    let seeded_in = seeding.elapsed();
    s.start_operator(&[
        ("ORPHAN_SCAN_INTERVAL_SECONDS", "10"),
        ("CLOUD_REFRESH_SECONDS", "3600"),
        ("RUST_LOG", "info"),
    ])
    .map_err(|e| e.to_string())?;
    wait_scans(&s, 2).await?;
    let before = calls(&s).await;
    wait_scans(&s, 3).await?;
    let after = calls(&s).await;
    let took = s
        .log()
        .lines()
        .filter(|l| l.contains("orphan scan finished"))
        .nth(2)
        .and_then(|l| l.split("took=").nth(1))
        .map(|t| t.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let found = s.metric_sum("molecule_orphans", &["kind="]).await;
    let mut md = format!(
        "### Orphan scan, {n} orphans of each listed kind\n\n- seeded in {:.1} s; one scan took {took}; findings: {found}\n\n| calls in one scan | count |\n|---|---|\n",
        seeded_in.as_secs_f64()
    );
    let mut total = 0.0;
    for (k, v) in &after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d > 0.0 {
            total += d;
            let _ = writeln!(md, "| {k} | {d} |");
        }
    }
    let _ = writeln!(md, "| total | {total} |");
    s.kill_operator();
    Ok(md)
}

#[tokio::main]
async fn main() -> ExitCode {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    match bench(n).await {
        Ok(md) => {
            println!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orphan-bench {n}: {e}");
            ExitCode::FAILURE
        }
    }
}
