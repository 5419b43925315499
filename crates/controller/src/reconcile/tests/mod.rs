//! In-process tests of the apply layer on the fake cloud (`cloud::fake`): the launch protocol,
//! delete and its blockers, groups, the erasure, the reaper and the redeploy. They run the same
//! code as the operator, with AWS's semantics (ClientToken, listing lag, lifecycles) modelled by
//! the fake, in seconds and without the e2e world.

mod boot;
mod bundle;
mod dns;
mod dvolume;
mod erase_run;
mod erasure;
mod groups;
mod iam;
mod identity;
mod launch;
mod reap;
mod redeploy;
mod subject;
mod teardown;
mod wsecret;
