"""The AWS resources the example parameter files (deploy/aws/environments/example) stand for,
made in moto: a VPC, four subnets and the UI's certificate, and the example files pointed at them."""

from __future__ import annotations

from pathlib import Path

import boto3

AWS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "aws"
REGION = "eu-west-1"


def network() -> dict[str, str]:
    """A VPC with public and private subnets in two zones and the UI's certificate, keyed by
    the placeholder ids of the example files."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ids = {"vpc-0123456789abcdef0": vpc}
    for n, (example, zone) in enumerate([("a", "a"), ("b", "b"), ("c", "a"), ("d", "b")]):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")
        ids[f"subnet-0{example * 16}"] = subnet["Subnet"]["SubnetId"]
    certificate = boto3.client("acm", region_name=REGION).request_certificate(DomainName="airflow.example.com")
    ids["arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"] = certificate[
        "CertificateArn"
    ]
    return ids


def params_file(tmp_path: Path, stack: str, ids: dict[str, str], **changes: str) -> Path:
    """The example parameter file of `stack`, pointed at this network, with `changes`."""
    text = (AWS_DIR / "environments" / "example" / f"{stack}.params").read_text()
    for example_id, real_id in ids.items():
        text = text.replace(example_id, real_id)
    lines = [line for line in text.splitlines() if line.partition("=")[0] not in changes]
    path = tmp_path / f"{stack}.params"
    path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in changes.items())]) + "\n")
    return path
