//! EC2 instances.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification, InstanceInterruptionBehavior,
    InstanceLifecycleType, InstanceMarketOptionsRequest, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    InstanceType, MarketType, ResourceType, SpotInstanceType, SpotMarketOptions, VolumeType,
};
use aws_smithy_types::date_time::Format;

use super::limiter::Class;
use super::{Aws, cloud_error, tag_filters, tag_map, tag_spec};
use crate::cloud::{CloudResult, Instance, InstanceState, Instances, LaunchRequest};

/// Hop limit 2 lets a container on the instance reach IMDSv2 (Docker's bridge adds a hop).
const IMDS_HOP_LIMIT: i32 = 2;
/// Largest page EC2 serves for DescribeInstances.
const PAGE: i32 = 1000;
/// Root device name when an image does not say (Ubuntu and Debian AMIs use it).
const DEFAULT_ROOT_DEVICE: &str = "/dev/sda1";

/// [`Instances`] on EC2.
#[derive(Clone, Debug)]
pub struct Ec2Instances {
    aws: Aws,
    /// Root device names by AMI: an image never changes its root device, so no expiry.
    roots: Arc<Mutex<HashMap<String, String>>>,
}

impl Ec2Instances {
    /// Instances of the account and region of `aws`.
    pub fn new(aws: Aws) -> Self {
        Self { aws, roots: Arc::default() }
    }

    /// The root device name of an image, asked once per image.
    async fn root_device(&self, image_id: &str) -> CloudResult<String> {
        if let Some(d) = self.roots.lock().ok().and_then(|m| m.get(image_id).cloned()) {
            return Ok(d);
        }
        self.aws.limiter.take(Class::Describe).await;
        let out = self
            .aws
            .ec2
            .describe_images()
            .image_ids(image_id)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "describe image", image_id))?;
        let device = out
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_ROOT_DEVICE)
            .to_owned();
        if let Ok(mut m) = self.roots.lock() {
            m.insert(image_id.to_owned(), device.clone());
        }
        Ok(device)
    }
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = i.instance_id()?.to_owned();
    Some(Instance {
        id,
        state: InstanceState::parse(i.state().and_then(|s| s.name()).map_or("pending", |n| n.as_str())),
        image_id: i.image_id().unwrap_or_default().to_owned(),
        private_ip: i.private_ip_address().filter(|s| !s.is_empty()).map(str::to_owned),
        launch_time: i.launch_time().and_then(|t| t.fmt(Format::DateTime).ok()),
        tags: tag_map(i.tags()),
        spot: i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
    })
}

/// Whether a describe-by-ID error means the resource is not there (unknown, purged or malformed
/// ID): absent, not a failure.
fn absent(e: &crate::cloud::CloudError) -> bool {
    e.kind == crate::cloud::ErrorKind::NotFound || e.code.ends_with(".Malformed")
}

/// Resources by ID (`call` is one Describe* of the IDs it is given): one call for the batch;
/// when EC2 fails it because one of its IDs is unknown (it fails a whole Describe* then), one
/// call per ID, an absent ID left out of the answer.
pub(super) async fn by_ids<T, F, Fut>(aws: &Aws, ids: &[String], call: F) -> CloudResult<Vec<T>>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = CloudResult<Vec<T>>>,
{
    if ids.len() > 1 {
        aws.limiter.take(Class::Describe).await;
        match call(ids.to_vec()).await {
            Err(e) if absent(&e) => {}
            answer => return answer,
        }
    }
    let mut out = Vec::new();
    for id in ids {
        aws.limiter.take(Class::Describe).await;
        match call(vec![id.clone()]).await {
            Ok(found) => out.extend(found),
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[async_trait]
impl Instances for Ec2Instances {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Instance>> {
        let mut pages = self
            .aws
            .ec2
            .describe_instances()
            .set_filters(Some(tag_filters(filters)))
            .into_paginator()
            .page_size(PAGE)
            .send();
        let mut out = Vec::new();
        loop {
            self.aws.limiter.take(Class::Describe).await;
            let Some(page) = pages.next().await else { return Ok(out) };
            let page = page.map_err(|e| cloud_error(&e, "describe instances", "by tag"))?;
            out.extend(
                page.reservations().iter().flat_map(aws_sdk_ec2::types::Reservation::instances).filter_map(to_instance),
            );
        }
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Instance>> {
        by_ids(&self.aws, ids, |ids| async move {
            let target = ids.join(",");
            let call = self.aws.ec2.describe_instances().set_instance_ids(Some(ids));
            let page = call.send().await.map_err(|e| cloud_error(&e, "describe instances", target))?;
            Ok(page
                .reservations()
                .iter()
                .flat_map(aws_sdk_ec2::types::Reservation::instances)
                .filter_map(to_instance)
                .collect())
        })
        .await
    }

    async fn launch(&self, req: &LaunchRequest) -> CloudResult<Instance> {
        let root_device = self.root_device(&req.image_id).await?;
        let root = EbsBlockDevice::builder()
            .volume_size(i32::try_from(req.root_gb).unwrap_or(i32::MAX))
            .volume_type(VolumeType::Gp3)
            .iops(i32::try_from(req.iops).unwrap_or(i32::MAX))
            .throughput(i32::try_from(req.throughput_mi_bps).unwrap_or(i32::MAX))
            .encrypted(true)
            .delete_on_termination(true)
            .build();
        let mut call = self
            .aws
            .ec2
            .run_instances()
            .client_token(&req.client_token)
            .image_id(&req.image_id)
            .instance_type(InstanceType::from(req.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .subnet_id(&req.subnet_id)
            .set_security_group_ids(Some(req.security_group_ids.clone()))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(IMDS_HOP_LIMIT)
                    .build(),
            )
            .block_device_mappings(BlockDeviceMapping::builder().device_name(root_device).ebs(root).build())
            .user_data(aws_smithy_types::base64::encode(req.user_data.as_bytes()))
            .tag_specifications(tag_spec(ResourceType::Instance, &req.tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &req.tags));
        if let Some(p) = &req.instance_profile {
            call = call.iam_instance_profile(IamInstanceProfileSpecification::builder().name(p).build());
        }
        if req.spot {
            call = call.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        self.aws.limiter.take(Class::Launch).await;
        let out = call.send().await.map_err(|e| cloud_error(&e, "launch instance", req.client_token.clone()))?;
        let mut inst = out.instances().iter().find_map(to_instance).ok_or_else(|| crate::cloud::CloudError {
            kind: crate::cloud::ErrorKind::Transient,
            action: "launch instance",
            target: req.client_token.clone(),
            code: "EmptyResponse".into(),
            message: "RunInstances returned no instance".into(),
        })?;
        // The tags were in the create call; an answer that omits them must not make a cache
        // mistake this instance for somebody else's or for an older attempt.
        for (k, v) in &req.tags {
            inst.tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(inst)
    }

    async fn tag(&self, ids: &[String], tags: &BTreeMap<String, String>) -> CloudResult<()> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let tags: Vec<aws_sdk_ec2::types::Tag> =
            tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect();
        self.aws.limiter.take(Class::Mutate).await;
        self.aws
            .ec2
            .create_tags()
            .set_resources(Some(ids.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| cloud_error(&e, "tag resources", ids.join(",")))?;
        Ok(())
    }

    async fn terminate(&self, ids: &[String]) -> CloudResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.aws.limiter.take(Class::Terminate).await;
        match self.aws.ec2.terminate_instances().set_instance_ids(Some(ids.to_vec())).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = cloud_error(&e, "terminate instances", ids.join(","));
                if err.kind != crate::cloud::ErrorKind::NotFound {
                    return Err(err);
                }
                // AWS terminates nothing of a batch with one unknown ID: try them one by one;
                // an ID that is gone is what we wanted.
                if ids.len() > 1 {
                    for id in ids {
                        self.terminate(std::slice::from_ref(id)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn stop(&self, id: &str) -> CloudResult<()> {
        self.aws.limiter.take(Class::Mutate).await;
        self.aws
            .ec2
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "stop instance", id))?;
        Ok(())
    }

    async fn start(&self, id: &str) -> CloudResult<()> {
        self.aws.limiter.take(Class::Mutate).await;
        self.aws
            .ec2
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "start instance", id))?;
        Ok(())
    }
}
