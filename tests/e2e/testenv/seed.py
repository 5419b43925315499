"""Seeds moto with the fake AWS account the operator expects, and prints shell exports.

Main account (region --region): a VPC with two subnets, an EC2 Instance Connect endpoint security
group, a private Route 53 zone for workspace hostnames, instance profiles for tenants and
workspaces, a canary role, and one registered AMI per image catalog key.
Canary account (reached through STS AssumeRole on the canary role, as the operator reaches it):
a VPC, a subnet, a tenant instance profile and AMIs in --canary-region.

Writes images.yaml and images-canary.yaml (image catalogs) into --out. Runs with moto's venv,
which carries boto3.
"""

import argparse
import json
import os

import boto3

CANARY_ACCOUNT = "222222222222"
CANARY_ROLE = f"arn:aws:iam::{CANARY_ACCOUNT}:role/molecule-canary-provisioner"
WORKSPACE_DOMAIN = "ws.internal"

# (family, version, arch, gpu): the keys of the image catalog.
IMAGE_KEYS = [
    ("ubuntu", "24.04", "x86_64", False),
    ("ubuntu", "24.04", "x86_64", True),
    ("ubuntu", "24.04", "arm64", False),
    ("ubuntu", "22.04", "x86_64", False),
    ("ubuntu", "22.04", "x86_64", True),
    ("ubuntu", "22.04", "arm64", False),
    ("debian", "12", "x86_64", False),
    ("debian", "12", "arm64", False),
]


def tags(name):
    return [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}]


def network(ec2, region, cidr, subnets):
    vpc = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tags("molecule-testenv"))["Vpc"]["VpcId"]
    ids = []
    for i, sub in enumerate(subnets):
        az = f"{region}{'abc'[i]}"
        ids.append(ec2.create_subnet(VpcId=vpc, CidrBlock=sub, AvailabilityZone=az)["Subnet"]["SubnetId"])
    return vpc, ids


def instance_profile(iam, name):
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def images(ec2, out_file, prefix):
    lines = ["# Image catalog of the test world (written by seed.py).", "images:"]
    default = None
    for family, version, arch, gpu in IMAGE_KEYS:
        name = f"{prefix}-{family}-{version}-{arch}{'-gpu' if gpu else ''}"
        ami = ec2.register_image(Name=name, Description=name)["ImageId"]
        lines.append(f"- {{family: {family}, version: '{version}', arch: {arch}, gpu: {str(gpu).lower()}, amiId: {ami}}}")
        if (family, version, arch, gpu) == ("ubuntu", "24.04", "x86_64", False):
            default = ami
    with open(out_file, "w") as f:
        f.write("\n".join(lines) + "\n")
    return default


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--canary-region", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    def client(svc, region=a.region, **kw):
        return boto3.client(svc, region_name=region, endpoint_url=a.endpoint, **kw)

    ec2 = client("ec2")
    vpc, subnets = network(ec2, a.region, "10.20.0.0/16", ["10.20.64.0/18", "10.20.128.0/18"])
    eic = ec2.create_security_group(
        GroupName="molecule-testenv-eic-endpoint", Description="EC2 Instance Connect endpoint", VpcId=vpc
    )["GroupId"]
    r53 = client("route53")
    zone = r53.create_hosted_zone(
        Name=WORKSPACE_DOMAIN,
        CallerReference="molecule-testenv",
        HostedZoneConfig={"PrivateZone": True, "Comment": "molecule workspaces"},
        VPC={"VPCRegion": a.region, "VPCId": vpc},
    )["HostedZone"]["Id"].split("/")[-1]
    # Roles and instance profiles of the account that are not the operator's (the shared profiles
    # of before issue 12): nothing may touch them, and the orphan scan must not report them.
    iam = client("iam")
    instance_profile(iam, "molecule-tenant")
    instance_profile(iam, "molecule-workspace")
    ami = images(ec2, os.path.join(a.out, "images.yaml"), "molecule")
    # The queue an EventBridge rule would fill with EC2 notifications (the AWS model publishes to
    # it once a test sets eventsQueueUrl; retention short, since nobody reads it otherwise).
    events_queue = client("sqs").create_queue(
        QueueName="molecule-ec2-events", Attributes={"MessageRetentionPeriod": "600"}
    )["QueueUrl"]

    # The canary account, reached the way the operator reaches it.
    creds = client("sts").assume_role(RoleArn=CANARY_ROLE, RoleSessionName="testenv-seed")["Credentials"]
    canary_kw = dict(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    cec2 = client("ec2", region=a.canary_region, **canary_kw)
    cvpc, csubnets = network(cec2, a.canary_region, "10.30.0.0/16", ["10.30.1.0/24"])
    instance_profile(client("iam", **canary_kw), "molecule-tenant")
    canary_ami = images(cec2, os.path.join(a.out, "images-canary.yaml"), "molecule-canary")

    exports = {
        "EC2_VPC_ID": vpc,
        "EC2_SUBNET_ID": subnets[0],
        "EC2_SUBNET_ID_2": subnets[1],
        "EC2_VPC_CIDR": "10.20.0.0/16",
        "EIC_ENDPOINT_SG_ID": eic,
        "EC2_AMI": ami,
        "WORKSPACE_HOSTED_ZONE_ID": zone,
        "WORKSPACE_DOMAIN": WORKSPACE_DOMAIN,
        "CANARY_ROLE_ARN": CANARY_ROLE,
        "CANARY_ACCOUNT_ID": CANARY_ACCOUNT,
        "CANARY_VPC_ID": cvpc,
        "CANARY_SUBNET_ID": csubnets[0],
        "CANARY_EC2_AMI": canary_ami,
        "CANARY_IMAGE_CATALOG_FILE": os.path.join(a.out, "images-canary.yaml"),
        "TESTENV_EVENTS_QUEUE_URL": events_queue,
    }
    for k, v in exports.items():
        print(f'export {k}="{v}"')


if __name__ == "__main__":
    main()
