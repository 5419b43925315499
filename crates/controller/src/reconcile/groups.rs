//! Security groups of Workspaces and Tenants: found by owner uid in the fleet cache, created with
//! their tags in the create call, rules converged to exactly the desired set.

use std::collections::BTreeMap;

use crate::cloud::cache::FleetCache;
use crate::cloud::{Network, Rule, RuleChange, SecurityGroup};
use crate::failpoints::Failpoints;
use crate::reconcile::Error;

/// The group a owner must have.
#[derive(Debug)]
pub struct Desired<'a> {
    /// Owner uid (the cache key).
    pub uid: &'a str,
    /// `status.securityGroupId`: preferred when several groups carry the uid.
    pub status_sg: Option<&'a str>,
    /// Group name, used only at creation.
    pub name: String,
    /// Description, used only at creation.
    pub description: String,
    /// Tags of the create call.
    pub tags: BTreeMap<String, String>,
    /// Inbound rules, sorted.
    pub ingress: Vec<Rule>,
    /// Outbound rules.
    pub egress: Vec<Rule>,
    /// Failpoint hit right after the create.
    pub failpoint: &'static str,
}

/// Rules to add and to remove to go from `have` to `want`. Pure.
pub fn diff(have: &[Rule], want: &[Rule]) -> (Vec<Rule>, Vec<Rule>) {
    let add = want.iter().filter(|r| !have.contains(r)).cloned().collect();
    let remove = have.iter().filter(|r| !want.contains(r)).cloned().collect();
    (add, remove)
}

/// Finds or creates the group and converges its rules. Returns the group.
pub async fn converge(
    network: &dyn Network,
    cache: &FleetCache,
    failpoints: &Failpoints,
    d: Desired<'_>,
) -> Result<SecurityGroup, Error> {
    let mut groups = cache.groups_of(d.uid);
    groups.sort_by_key(|g| Some(g.id.as_str()) != d.status_sg);
    let mut group = if let Some(g) = groups.into_iter().next() {
        g
    } else {
        let id = network.create(&d.name, &d.description, &d.tags).await?;
        // EC2 puts one rule in a new group: all egress to anywhere.
        let g = SecurityGroup { id, tags: d.tags.clone(), ingress: vec![], egress: vec![Rule::all_with("0.0.0.0/0")] };
        failpoints.hit(d.failpoint).await;
        g
    };
    let (add_in, del_in) = diff(&group.ingress, &d.ingress);
    let (add_out, del_out) = diff(&group.egress, &d.egress);
    if add_in.is_empty() && del_in.is_empty() && add_out.is_empty() && del_out.is_empty() {
        return Ok(group);
    }
    network.change_rules(&group.id, &add_in, RuleChange::AuthorizeIngress).await?;
    network.change_rules(&group.id, &del_in, RuleChange::RevokeIngress).await?;
    // Add before revoking so a change of egress never leaves the instance with none.
    network.change_rules(&group.id, &add_out, RuleChange::AuthorizeEgress).await?;
    network.change_rules(&group.id, &del_out, RuleChange::RevokeEgress).await?;
    group.ingress = d.ingress;
    group.egress = d.egress;
    Ok(group)
}
