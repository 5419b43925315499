//! A launch [`Subject`] for tests: a status in memory, Events and status writes recorded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use molecule_crds::v1alpha1::LaunchRecord;

use crate::cloud::tags::Owner;
use crate::cloud::{LaunchRequest, Volume};
use crate::reconcile::Error;
use crate::reconcile::launch::Subject;

/// What the protocol records of the owner.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub launch: Option<LaunchRecord>,
    pub instance_id: Option<String>,
}

/// The test subject.
#[derive(Debug)]
pub struct Vm {
    pub owner: Owner,
    pub hash: String,
    pub spot: bool,
    pub volume: Option<Volume>,
    /// The security group it launches in (must exist).
    pub sg: String,
    /// Status writes, in order.
    pub writes: Mutex<Vec<Status>>,
    /// Events: (warning, reason, note).
    pub events: Mutex<Vec<(bool, &'static str, String)>>,
    /// The status write with this index (0-based) fails.
    pub fail_write: Option<usize>,
    writes_seen: AtomicUsize,
}

impl Vm {
    pub fn new(owner: Owner) -> Self {
        Self {
            owner,
            hash: "h1".into(),
            spot: false,
            volume: None,
            sg: String::new(),
            writes: Mutex::default(),
            events: Mutex::default(),
            fail_write: None,
            writes_seen: AtomicUsize::new(0),
        }
    }

    pub fn reasons(&self) -> Vec<&'static str> {
        self.events.lock().unwrap().iter().map(|e| e.1).collect()
    }
}

#[async_trait]
impl Subject for Vm {
    type Status = Status;

    fn owner(&self) -> &Owner {
        &self.owner
    }

    fn noun(&self) -> &'static str {
        "test VM"
    }

    fn spec_hash(&self) -> &str {
        &self.hash
    }

    fn request(&self) -> Result<LaunchRequest, Error> {
        Ok(LaunchRequest {
            client_token: String::new(),
            instance_type: "t3.small".into(),
            image_id: "ami-1".into(),
            subnet_id: "subnet-1".into(),
            security_group_ids: vec![self.sg.clone()],
            instance_profile: None,
            root_gb: 30,
            iops: 3000,
            throughput_mi_bps: 125,
            spot: self.spot,
            user_data: "#!/bin/sh\n".into(),
            tags: std::collections::BTreeMap::new(),
        })
    }

    fn data_volume(&self) -> Option<&Volume> {
        self.volume.as_ref()
    }

    fn record<'s>(&self, st: &'s mut Status) -> &'s mut Option<LaunchRecord> {
        &mut st.launch
    }

    fn instance_id<'s>(&self, st: &'s mut Status) -> &'s mut Option<String> {
        &mut st.instance_id
    }

    async fn persist(&self, st: &Status) -> Result<(), Error> {
        let n = self.writes_seen.fetch_add(1, Ordering::SeqCst);
        if self.fail_write == Some(n) {
            return Err(Error::Cloud(crate::cloud::CloudError {
                kind: crate::cloud::ErrorKind::Transient,
                action: "write status",
                target: self.owner.uid.clone(),
                code: "Unavailable".into(),
                message: "the API server did not answer".into(),
            }));
        }
        self.writes.lock().unwrap().push(st.clone());
        Ok(())
    }

    async fn event(&self, warning: bool, reason: &'static str, note: String) {
        self.events.lock().unwrap().push((warning, reason, note));
    }
}
