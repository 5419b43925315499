//! Running the erasure in the tests: Tenant `acme` (hostname `acme.example.test`) in the main
//! account, pass by pass, the cloud's clock advanced between passes; and where a call came in the
//! fake's call log.

use std::time::Duration;

use kube::runtime::reflector::Store;
use molecule_crds::v1alpha1::{Tenant, Workspace};

use crate::cloud::fake::FakeCloud;
use crate::context::Context;
use crate::reconcile::Error;
use crate::reconcile::tenant::{Memory, erase, receipt::Receipt};
use crate::testing;

/// Tenant `acme` with `uid` and `status` (`Value::Null`: none).
pub fn tenant(uid: &str, status: &serde_json::Value) -> Tenant {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme", "uid": uid}, "spec": {}, "status": status,
    }))
    .unwrap()
}

/// One erasure pass of `t` with `workspaces` as the Workspace watch cache.
pub async fn pass(
    ctx: &Context,
    t: &Tenant,
    rc: &mut Receipt,
    workspaces: &Store<Workspace>,
) -> Result<(), (&'static str, Error)> {
    let uid = t.metadata.uid.as_deref().unwrap_or_default();
    let (owner, memory) = (testing::tenant_owner(uid, "acme"), Memory::default());
    let mut e = erase::Erasure {
        ctx,
        memory: &memory,
        tenant: t,
        owner: &owner,
        hostname: "acme.example.test",
        workspaces: workspaces.clone(),
        accounts: vec![ctx.main.as_ref()],
        receipt: rc,
        now: jiff::Timestamp::now().to_string(),
    };
    e.run().await
}

/// Runs up to `rounds` passes of `t` with an empty watch cache; after each pass that returns,
/// `waited` sees its step and error, and the cloud's clock advances two minutes before a new
/// listing. Whether the erasure completed.
pub async fn rounds(
    ctx: &Context,
    fake: &FakeCloud,
    t: &Tenant,
    rc: &mut Receipt,
    rounds: usize,
    mut waited: impl FnMut(&'static str, &Error),
) -> bool {
    let workspaces = kube::runtime::reflector::store().0;
    for _ in 0..rounds {
        match pass(ctx, t, rc, &workspaces).await {
            Ok(()) => return true,
            Err((step, err)) => {
                waited(step, &err);
                fake.advance(Duration::from_mins(2));
                tokio::time::sleep(Duration::from_millis(5)).await;
                ctx.main.cache.refresh().await.unwrap();
            }
        }
    }
    false
}

/// Where the first `op` call on a target containing `target` came in the fake's call log.
pub fn first_call(fake: &FakeCloud, op: &str, target: &str) -> usize {
    fake.calls()
        .iter()
        .position(|c| c.op == op && c.target.contains(target))
        .unwrap_or_else(|| panic!("no {op} {target}"))
}
