//! The operator's Cloudflare client against the test world's Cloudflare fake: a tunnel found by
//! name before it is created, configured, its token read; CNAME and TXT records; deletes that
//! tolerate what is already gone; a wrong token refused.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use molecule_e2e::harness::{TestEnv, unique};
use molecule_operator::cloud::cloudflare::Cloudflare;
use molecule_operator::cloud::{ErrorKind, Tunnels};

#[tokio::test]
async fn tunnel_and_records_round_trip() {
    let env = TestEnv::load().unwrap();
    let cf = Cloudflare::new(
        env.var("CLOUDFLARE_API_URL"),
        env.var("CLOUDFLARE_API_TOKEN"),
        env.var("CLOUDFLARE_ACCOUNT_ID"),
        env.var("CLOUDFLARE_ZONE_ID"),
    )
    .unwrap();
    let name = unique("tenant");
    assert_eq!(cf.find(&name).await.unwrap(), None);
    let t = cf.create(&name).await.unwrap();
    assert_eq!(cf.find(&name).await.unwrap(), Some(t.clone()), "found by name");
    let dup = cf.create(&name).await.unwrap_err();
    assert_eq!(dup.kind, ErrorKind::Rejected, "a second tunnel of that name is refused: {dup}");
    assert!(!cf.token(&t.id).await.unwrap().is_empty());
    let host = format!("{name}.moleculesai.test");
    cf.configure(&t.id, &host, "http://localhost:8080").await.unwrap();

    let cname = cf.create_record("CNAME", &host, &format!("{}.cfargotunnel.com", t.id)).await.unwrap();
    let txt = cf.create_record("TXT", &format!("_molecule.{host}"), "heritage=molecule-operator").await.unwrap();
    let found = cf.records("CNAME", &host).await.unwrap();
    assert_eq!(found, vec![cname.clone()]);
    cf.delete_record(&cname.id).await.unwrap();
    cf.delete_record(&txt.id).await.unwrap();
    cf.delete_record(&cname.id).await.unwrap();
    assert!(cf.records("CNAME", &host).await.unwrap().is_empty());
    cf.delete(&t.id).await.unwrap();
    cf.delete(&t.id).await.unwrap();
    assert_eq!(cf.find(&name).await.unwrap(), None);

    let wrong = Cloudflare::new(
        env.var("CLOUDFLARE_API_URL"),
        "nope",
        env.var("CLOUDFLARE_ACCOUNT_ID"),
        env.var("CLOUDFLARE_ZONE_ID"),
    )
    .unwrap();
    let e = wrong.find(&name).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Rejected);
    assert!(!e.to_string().contains(env.var("CLOUDFLARE_API_TOKEN")), "the token never appears in errors");
}
