"""Checks and times the AWS model's indexed tag lookup (aws_model._get_tags) against moto's own.

    ~/.cache/molecule-testenv/venv-moto-*/bin/python tests/e2e/testenv/tag_index_check.py [N]

Launches N instances (default 1000) with the operator's tags, and as many security groups, in
moto's in-process mock; lists them with a tag filter (what the operator's fleet listing sends)
with moto's scan and then with the index; exits 1 unless both answers are the same. Prints the
time of each listing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.ec2.models.core import TaggedEC2Resource  # noqa: E402

import aws_model  # noqa: E402

TAGS = ["managed-by", "operator-id", "env", "owner-kind", "owner-uid", "owner", "tenant", "boot"]


def listing(ec2):
    filters = [{"Name": "tag:moleculesai.app/managed-by", "Values": ["molecule-operator"]}]
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for r in page["Reservations"]:
            out += [(i["InstanceId"], sorted((t["Key"], t["Value"]) for t in i["Tags"])) for i in r["Instances"]]
    return sorted(out)


def timed(ec2):
    t0 = time.monotonic()
    result = listing(ec2)
    return result, time.monotonic() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for i in range(n):
            tags = [{"Key": f"moleculesai.app/{k}", "Value": "molecule-operator" if k == "managed-by" else f"v{i}"} for k in TAGS]
            spec = [{"ResourceType": "instance", "Tags": tags}]
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=spec)
            ec2.create_security_group(GroupName=f"g{i}", Description="g", TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}])
        original = TaggedEC2Resource.get_tags
        scanned, t_scan = timed(ec2)
        aws_model.install()
        indexed, t_index = timed(ec2)
        TaggedEC2Resource.get_tags = original
        print(f"{n} instances, {2 * n * len(TAGS)} tags: moto's scan {t_scan:.2f} s, indexed {t_index:.2f} s")
        if scanned != indexed or len(indexed) != n:
            print("the answers differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
