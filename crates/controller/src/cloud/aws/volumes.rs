//! EBS data volumes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, VolumeAttachmentState, VolumeType};

use super::limiter::Class;
use super::{Aws, cloud_error, gone, tag_filters, tag_map, tag_spec};
use crate::cloud::{CloudResult, Volume, VolumeRequest, Volumes};

/// Largest page EC2 serves for DescribeVolumes.
const PAGE: i32 = 500;

/// [`Volumes`] on EC2.
#[derive(Clone, Debug)]
pub struct Ec2Volumes(pub Aws);

fn to_volume(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    Some(Volume {
        id: v.volume_id()?.to_owned(),
        state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        attached_to: v
            .attachments()
            .iter()
            .find(|a| matches!(a.state(), Some(VolumeAttachmentState::Attached | VolumeAttachmentState::Attaching)))
            .and_then(|a| a.instance_id())
            .map(str::to_owned),
        tags: tag_map(v.tags()),
        size_gb: v.size().and_then(|s| u32::try_from(s).ok()).unwrap_or_default(),
        zone: v.availability_zone().unwrap_or_default().to_owned(),
    })
}

#[async_trait]
impl Volumes for Ec2Volumes {
    async fn list(&self, filters: &BTreeMap<String, String>) -> CloudResult<Vec<Volume>> {
        let mut pages = self
            .0
            .ec2
            .describe_volumes()
            .set_filters(Some(tag_filters(filters)))
            .into_paginator()
            .page_size(PAGE)
            .send();
        let mut out = Vec::new();
        loop {
            self.0.limiter.take(Class::Describe).await;
            let Some(page) = pages.next().await else { return Ok(out) };
            let page = page.map_err(|e| cloud_error(&e, "describe volumes", "by tag"))?;
            out.extend(page.volumes().iter().filter_map(to_volume));
        }
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<Vec<Volume>> {
        super::ec2::by_ids(&self.0, ids, |ids| async move {
            let target = ids.join(",");
            let page = self.0.ec2.describe_volumes().set_volume_ids(Some(ids)).send().await;
            let page = page.map_err(|e| cloud_error(&e, "describe volumes", target))?;
            Ok(page.volumes().iter().filter_map(to_volume).collect())
        })
        .await
    }

    async fn create(&self, req: &VolumeRequest) -> CloudResult<Volume> {
        self.0.limiter.take(Class::Mutate).await;
        let out = self
            .0
            .ec2
            .create_volume()
            .client_token(&req.client_token)
            .availability_zone(&req.zone)
            .size(i32::try_from(req.size_gb).unwrap_or(i32::MAX))
            .volume_type(VolumeType::Gp3)
            .encrypted(true)
            .tag_specifications(tag_spec(ResourceType::Volume, &req.tags))
            .send()
            .await
            .map_err(|e| cloud_error(&e, "create volume", req.client_token.clone()))?;
        Ok(Volume {
            id: out.volume_id().unwrap_or_default().to_owned(),
            state: out.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            attached_to: None,
            tags: req.tags.clone(),
            size_gb: out.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(req.size_gb),
            zone: out.availability_zone().unwrap_or(&req.zone).to_owned(),
        })
    }

    async fn attach(&self, volume: &str, instance: &str, device: &str) -> CloudResult<()> {
        self.0.limiter.take(Class::Mutate).await;
        self.0
            .ec2
            .attach_volume()
            .volume_id(volume)
            .instance_id(instance)
            .device(device)
            .send()
            .await
            .map_err(|e| cloud_error(&e, "attach volume", volume))?;
        Ok(())
    }

    async fn detach(&self, volume: &str, instance: &str) -> CloudResult<()> {
        self.0.limiter.take(Class::Mutate).await;
        match self.0.ec2.detach_volume().volume_id(volume).instance_id(instance).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = cloud_error(&e, "detach volume", volume);
                // IncorrectState: already detached (InvalidAttachment.NotFound, the answer when
                // an instance is named, goes to the caller: cached.rs reads it).
                if err.code == "IncorrectState" { Ok(()) } else { Err(err) }
            }
        }
    }

    async fn delete(&self, volume: &str) -> CloudResult<()> {
        self.0.limiter.take(Class::Mutate).await;
        let r = self.0.ec2.delete_volume().volume_id(volume).send().await;
        gone(r.map(|_| ()).map_err(|e| cloud_error(&e, "delete volume", volume)))
    }
}
