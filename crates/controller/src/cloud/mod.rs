//! The cloud layer: one module per concern behind a small trait, domain types at the boundary
//! (no SDK type crosses into a reconciler), and the AWS implementation in [`aws`].
//!
//! Reconcilers read cloud state from the shared [`cache::FleetCache`] (batched, paginated
//! describes) and change it through the traits here. Implementations never emit Kubernetes
//! Events and never import reconcilers.

pub mod aws;
pub mod cache;
pub mod cached;
pub mod cloudflare;
pub mod commands;
pub mod dns;
pub mod events;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod guard;
pub mod identities;
pub mod marks;
pub mod secrets;
pub mod tags;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

/// Why a cloud call failed, in a bounded category (metric label, Event reason, requeue delay).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider asked us to slow down.
    Throttled,
    /// A 5xx, a timeout or a broken connection: the outcome is unknown, retry later.
    Transient,
    /// The provider refused the request (4xx); retrying the same request will not help until
    /// something changes.
    Rejected,
    /// The resource is still used by another one (DependencyViolation, VolumeInUse).
    InUse,
    /// The resource does not exist.
    NotFound,
    /// The credentials may not do this (AccessDenied, UnauthorizedOperation, AuthFailure, a
    /// denied STS AssumeRole): an account or IAM problem, not a blip; retrying soon will not help.
    Denied,
}

impl ErrorKind {
    /// Metric label and Event reason fragment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "Throttled",
            Self::Transient => "CloudTransient",
            Self::Rejected => "CloudRejected",
            Self::InUse => "InUse",
            Self::NotFound => "NotFound",
            Self::Denied => "CloudDenied",
        }
    }
}

/// A failed cloud call: what was attempted, on what, and the provider's code and message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("failed to {action} {target}: {code}: {message}")]
pub struct CloudError {
    /// Bounded category.
    pub kind: ErrorKind,
    /// What we tried ("terminate instance").
    pub action: &'static str,
    /// The resource it was about (an ID, a name).
    pub target: String,
    /// The provider's error code, or a short word of ours.
    pub code: String,
    /// The provider's message.
    pub message: String,
}

/// The code of a call that ran out of its deadline (connect, read or operation timeout), with
/// [`ErrorKind::Transient`].
pub const TIMED_OUT: &str = "TimedOut";

impl CloudError {
    /// Whether the call ran out of its deadline (no answer: the dependency may hang).
    pub fn timed_out(&self) -> bool {
        self.code == TIMED_OUT
    }
}

/// The code of a call about a volume that does not exist (not: not attached).
pub const VOLUME_GONE: &str = "InvalidVolume.NotFound";
/// The code of a detach whose volume is not attached to the instance named (already detached).
pub const NOT_ATTACHED: &str = "InvalidAttachment.NotFound";
/// The code of an attach whose volume lives in another availability zone than the instance.
pub const ZONE_MISMATCH: &str = "InvalidVolume.ZoneMismatch";

/// Result of a cloud call.
pub type CloudResult<T> = Result<T, CloudError>;

/// Lifecycle state of an EC2 instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceState {
    /// Launching.
    Pending,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped (EBS kept).
    Stopped,
    /// Being terminated.
    ShuttingDown,
    /// Gone.
    Terminated,
}

impl InstanceState {
    /// Parses EC2's state name; unknown names read as pending (the safe, non-final reading).
    pub fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            _ => Self::Pending,
        }
    }

    /// Whether the instance still exists (costs money or holds resources).
    pub fn is_alive(self) -> bool {
        !matches!(self, Self::ShuttingDown | Self::Terminated)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
        })
    }
}

/// An instance as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Instance ID.
    pub id: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// AMI.
    pub image_id: String,
    /// Private IPv4 address, once assigned.
    pub private_ip: Option<String>,
    /// Launch time, RFC 3339.
    pub launch_time: Option<String>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
    /// Spot instance.
    pub spot: bool,
}

impl Instance {
    /// A tag's value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The launch attempt recorded in the instance's tags (0 when missing).
    pub fn attempt(&self) -> u32 {
        self.tag(tags::LAUNCH_ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0)
    }
}

/// One security group rule, in a form that compares equal when AWS would consider it the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// "tcp", "udp", "icmp" or "-1" (all).
    pub protocol: String,
    /// First port (-1 for all).
    pub from_port: i32,
    /// Last port (-1 for all).
    pub to_port: i32,
    /// Where traffic comes from (ingress) or goes to (egress).
    pub peer: Peer,
}

/// The four rule changes EC2 has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleChange {
    /// Add inbound rules.
    AuthorizeIngress,
    /// Remove inbound rules.
    RevokeIngress,
    /// Add outbound rules.
    AuthorizeEgress,
    /// Remove outbound rules.
    RevokeEgress,
}

impl Rule {
    /// All traffic to or from an IPv4 CIDR (what EC2 puts in a new group's egress: 0.0.0.0/0).
    pub fn all_with(cidr: &str) -> Self {
        Self { protocol: "-1".into(), from_port: -1, to_port: -1, peer: Peer::Cidr(cidr.into()) }
    }
}

/// The other side of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// Another security group.
    Group(String),
    /// An IPv4 CIDR block.
    Cidr(String),
    /// An IPv6 CIDR block.
    Cidr6(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = match &self.peer {
            Peer::Group(g) => g.as_str(),
            Peer::Cidr(c) | Peer::Cidr6(c) => c.as_str(),
        };
        if self.protocol == "-1" {
            write!(f, "all traffic with {peer}")
        } else {
            write!(f, "{} {}-{} with {peer}", self.protocol, self.from_port, self.to_port)
        }
    }
}

/// A security group as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Group ID.
    pub id: String,
    /// All tags.
    pub tags: BTreeMap<String, String>,
    /// Inbound rules.
    pub ingress: Vec<Rule>,
    /// Outbound rules.
    pub egress: Vec<Rule>,
}

/// An EBS volume as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// Volume ID.
    pub id: String,
    /// creating, available, in-use, deleting, deleted, error.
    pub state: String,
    /// Instance it is attached to (attaching or attached).
    pub attached_to: Option<String>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
    /// Size in GiB (0: unknown).
    pub size_gb: u32,
    /// Availability zone ("": unknown).
    pub zone: String,
}

/// Everything RunInstances needs. Tags go into the create call for the instance and its volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchRequest {
    /// Idempotency token (EC2 ClientToken), stored in the owner's status before the call.
    pub client_token: String,
    /// Instance type.
    pub instance_type: String,
    /// AMI.
    pub image_id: String,
    /// Subnet.
    pub subnet_id: String,
    /// Security groups.
    pub security_group_ids: Vec<String>,
    /// Instance profile name, if any.
    pub instance_profile: Option<String>,
    /// Root volume size, IOPS and throughput (encrypted gp3).
    pub root_gb: u32,
    /// Root volume IOPS.
    pub iops: u32,
    /// Root volume throughput in MiB/s.
    pub throughput_mi_bps: u32,
    /// Buy as spot (one-time, terminate on interruption).
    pub spot: bool,
    /// User-data, plain text (the implementation encodes it).
    pub user_data: String,
    /// Tags for the instance and its root volume.
    pub tags: BTreeMap<String, String>,
}

/// Everything CreateVolume needs for a data volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRequest {
    /// Idempotency token.
    pub client_token: String,
    /// Size in GiB.
    pub size_gb: u32,
    /// Availability zone (the subnet's).
    pub zone: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// EC2 instances.
#[async_trait]
pub trait Instances: Send + Sync {
    /// Every instance carrying `filters` tags (all pages), terminated ones included.
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Instance>>;
    /// The instances named by `ids`, whatever their tags (describe by ID: no listing lag, and it
    /// finds what a tag change or another operator id or env hides from [`Instances::list`]). An
    /// ID AWS does not know (never existed, purged, malformed) is absent from the answer, not an
    /// error.
    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Instance>>;
    /// Launches one instance.
    ///
    /// Guarantees: the instance and its root volume carry `req.tags` from creation; IMDSv2 is
    /// required; the root volume is encrypted gp3. Caveat: the ClientToken makes a retry of the
    /// same request idempotent on AWS (moto ignores it), so callers must also look up by tag.
    async fn launch(&self, req: &LaunchRequest) -> CloudResult<Instance>;
    /// Terminates instances. Success means AWS accepted the request, not that they are gone.
    async fn terminate(&self, ids: &[String]) -> CloudResult<()>;
    /// Stops an instance.
    async fn stop(&self, id: &str) -> CloudResult<()>;
    /// Starts a stopped instance.
    async fn start(&self, id: &str) -> CloudResult<()>;
    /// Adds `tags` to EC2 resources of any type (instances, security groups, volumes).
    async fn tag(&self, ids: &[String], tags: &BTreeMap<String, String>) -> CloudResult<()>;
}

/// Security groups.
#[async_trait]
pub trait Network: Send + Sync {
    /// Every security group carrying `filters` tags (all pages).
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<SecurityGroup>>;
    /// The groups named by `ids`, whatever their tags; an unknown ID is absent, not an error.
    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<SecurityGroup>>;
    /// Creates a group with tags in the create call; an existing group of that name is returned.
    async fn create(&self, name: &str, description: &str, tags: &BTreeMap<String, String>) -> CloudResult<String>;
    /// Adds or removes rules; a duplicate add or a missing removal is already the wanted state.
    async fn change_rules(&self, group: &str, rules: &[Rule], change: RuleChange) -> CloudResult<()>;
    /// Deletes a group. A missing group is success; a group in use is [`ErrorKind::InUse`].
    async fn delete(&self, group: &str) -> CloudResult<()>;
}

/// EBS volumes.
#[async_trait]
pub trait Volumes: Send + Sync {
    /// Every volume carrying `filters` tags (all pages).
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Volume>>;
    /// The volumes named by `ids`, whatever their tags; an unknown ID is absent, not an error.
    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Volume>>;
    /// Creates an encrypted gp3 volume with tags in the create call.
    async fn create(&self, req: &VolumeRequest) -> CloudResult<Volume>;
    /// Attaches a volume to an instance at `device`.
    async fn attach(&self, volume: &str, instance: &str, device: &str) -> CloudResult<()>;
    /// Detaches a volume from `instance`. Providers answer a volume not attached to `instance`
    /// with `InvalidAttachment.NotFound` ([`ErrorKind::NotFound`]); a missing volume with
    /// `InvalidVolume.NotFound` (see [`VOLUME_GONE`]).
    async fn detach(&self, volume: &str, instance: &str) -> CloudResult<()>;
    /// Deletes a volume. A missing volume is success; an attached one is [`ErrorKind::InUse`].
    async fn delete(&self, volume: &str) -> CloudResult<()>;
}

/// A DNS record with its ownership record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Fully qualified name, without the trailing dot.
    pub name: String,
    /// Record type (A, CNAME).
    pub record_type: &'static str,
    /// Value (an IP, a target name).
    pub value: String,
    /// The ownership mark written in the TXT record beside it.
    pub owner_mark: String,
}

/// What a zone holds at one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSet {
    /// Values of the main record (A or CNAME), empty when absent.
    pub values: Vec<String>,
    /// TTL of the main record (a delete must name it).
    pub ttl: Option<i64>,
    /// Values of the TXT record beside it, unquoted, empty when absent.
    pub txt: Vec<String>,
    /// TTL of the TXT record.
    pub txt_ttl: Option<i64>,
}

/// DNS records in one zone.
#[async_trait]
pub trait Dns: Send + Sync {
    /// What the zone holds at `name` for `record_type` and TXT.
    async fn get(&self, name: &str, record_type: &'static str) -> CloudResult<RecordSet>;
    /// Creates or replaces the record and its ownership TXT in one atomic change.
    async fn upsert(&self, record: &OwnedRecord) -> CloudResult<()>;
    /// Deletes the record and its ownership TXT, as they are now (`current`), in one change.
    async fn delete(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<()>;
    /// Starts [`Dns::delete`] without waiting for it where changes are batched: `Ok(true)` once
    /// deleted, `Ok(false)` while on its way (call again later), the error of a failed delete
    /// once. By default, `delete` itself.
    async fn delete_soon(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<bool> {
        self.delete(name, record_type, current).await.map(|()| true)
    }
    /// Every name ending in `.<suffix>` that has a TXT record, with its unquoted TXT values (the
    /// whole zone, all pages: an erasure sweep, not a steady-state call).
    async fn txt_under(&self, suffix: &str) -> CloudResult<Vec<(String, Vec<String>)>>;
}

/// A Cloudflare tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// UUID.
    pub id: String,
    /// Unique name among live tunnels.
    pub name: String,
}

/// A Cloudflare DNS record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfRecord {
    /// Record ID.
    pub id: String,
    /// CNAME, TXT, ...
    pub record_type: String,
    /// Fully qualified name.
    pub name: String,
    /// Target or text.
    pub content: String,
}

/// Remotely managed Cloudflare tunnels and the zone's records.
#[async_trait]
pub trait Tunnels: Send + Sync {
    /// The live tunnel named `name`, if any (tunnels are found by name before one is created).
    async fn find(&self, name: &str) -> CloudResult<Option<Tunnel>>;
    /// Creates a remotely managed tunnel.
    async fn create(&self, name: &str) -> CloudResult<Tunnel>;
    /// The connector token of a tunnel (a secret: never log it).
    async fn token(&self, id: &str) -> CloudResult<String>;
    /// Replaces the tunnel's ingress: `hostname` to `service`, then a 404 catch-all.
    async fn configure(&self, id: &str, hostname: &str, service: &str) -> CloudResult<()>;
    /// Deletes a tunnel; a missing one is success.
    async fn delete(&self, id: &str) -> CloudResult<()>;
    /// Records of `record_type` at `name`.
    async fn records(&self, record_type: &str, name: &str) -> CloudResult<Vec<CfRecord>>;
    /// Creates a record (CNAMEs proxied).
    async fn create_record(&self, record_type: &str, name: &str, content: &str) -> CloudResult<CfRecord>;
    /// Deletes a record; a missing one is success.
    async fn delete_record(&self, id: &str) -> CloudResult<()>;
    /// Every live tunnel of the account (all pages; the orphan scan).
    async fn list_all(&self) -> CloudResult<Vec<Tunnel>>;
    /// Every record of `record_type` in the zone (all pages; the orphan scan).
    async fn all_records(&self, record_type: &str) -> CloudResult<Vec<CfRecord>>;
}
