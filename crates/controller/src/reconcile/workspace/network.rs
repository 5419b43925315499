//! The Workspace's security group: created with its tags, rules converged to exactly the desired
//! set. Ingress only from the EC2 Instance Connect endpoint (SSH) and the Tenant's group (agent
//! port); never 0.0.0.0/0 inbound, never a display port.

use molecule_crds::v1alpha1::Workspace;

use crate::bootstrap::AGENT_PORT;
use crate::cloud::tags::Owner;
use crate::cloud::{Peer, Rule, SecurityGroup};
use crate::context::Context;
use crate::reconcile::{Error, groups};

/// The rules a Workspace's group must hold: (ingress, egress). Pure.
pub fn desired(
    eic_sg: Option<&str>,
    tenant_sg: Option<&str>,
    egress_open: bool,
    vpc_cidr: &str,
) -> (Vec<Rule>, Vec<Rule>) {
    let tcp = |port: u16, g: &str| Rule {
        protocol: "tcp".into(),
        from_port: i32::from(port),
        to_port: i32::from(port),
        peer: Peer::Group(g.into()),
    };
    let mut ingress: Vec<Rule> =
        [eic_sg.map(|g| tcp(22, g)), tenant_sg.map(|g| tcp(AGENT_PORT, g))].into_iter().flatten().collect();
    ingress.sort();
    let egress = vec![Rule::all_with(if egress_open { "0.0.0.0/0" } else { vpc_cidr })];
    (ingress, egress)
}

/// Finds or creates the group and converges its rules. Returns the group.
pub async fn ensure(
    ctx: &Context,
    ws: &Workspace,
    owner: &Owner,
    tenant_sg: Option<&str>,
    status_sg: Option<&str>,
) -> Result<SecurityGroup, Error> {
    let egress_open = ws.spec.compute.network.as_ref().is_none_or(|n| n.egress_open);
    let (ingress, egress) = desired(ctx.main.eic_sg.as_deref(), tenant_sg, egress_open, &ctx.main.vpc_cidr);
    let d = groups::Desired {
        uid: &owner.uid,
        status_sg,
        name: format!("molecule-ws-{}", owner.uid),
        description: format!("molecule workspace {} of tenant {}", owner.qualified(), owner.tenant),
        tags: ctx.identity.tags(owner),
        ingress,
        egress,
        failpoint: "workspace.sg.after-create",
    };
    groups::converge(ctx.main.network.as_ref(), &ctx.main.cache, &ctx.failpoints, d).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::groups::diff;

    #[test]
    fn ingress_never_opens_the_world_or_a_display_port() {
        let (ingress, egress) = desired(Some("sg-eic"), Some("sg-tenant"), true, "10.0.0.0/16");
        assert_eq!(ingress.len(), 2);
        assert!(ingress.iter().all(|r| matches!(r.peer, Peer::Group(_))));
        assert!(ingress.iter().all(|r| ![5900, 5901, 6080, 8443].contains(&r.from_port)));
        assert_eq!(egress[0].peer, Peer::Cidr("0.0.0.0/0".into()));
        let (ingress, egress) = desired(None, None, false, "10.0.0.0/16");
        assert!(ingress.is_empty());
        assert_eq!(egress[0].peer, Peer::Cidr("10.0.0.0/16".into()));
    }

    #[test]
    fn diff_adds_and_removes_exactly() {
        let (_, open) = desired(None, None, true, "10.0.0.0/16");
        let (_, closed) = desired(None, None, false, "10.0.0.0/16");
        assert_eq!(diff(&open, &closed), (closed.clone(), open.clone()));
        assert_eq!(diff(&open, &open), (vec![], vec![]));
    }
}
