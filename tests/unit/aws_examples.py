"""The AWS resources the example parameter files (deploy/aws/environments/example) stand for,
made in moto: a VPC, four subnets and the UI's certificate, the example files pointed at them,
and a stack deployed with the parameters `make -C deploy/aws` would pass. The fixtures `aws`
and `stacks` in conftest.py use them."""

from __future__ import annotations

from pathlib import Path

import boto3

from airflow_stack.host import awsdeploy
from tests.unit import moto_cfn  # noqa: F401 - registers the extra CloudFormation types

AWS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "aws"
REGION = "eu-west-1"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-stack:1.0.0"


def network(cidr: str = "172.31.0.0/16") -> dict[str, str]:
    """A VPC with public and private subnets in two zones and the UI's certificate, keyed by
    the placeholder ids of the example files. The default range is that of an account's default
    VPC, outside 10.0.0.0/8: the templates must assume no range."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    ids = {"vpc-0123456789abcdef0": vpc}
    prefix = ".".join(cidr.split(".")[:2])
    for n, (example, zone) in enumerate([("a", "a"), ("b", "b"), ("c", "a"), ("d", "b")]):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{prefix}.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")
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


def outputs(stack: str) -> dict[str, str]:
    described = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def deploy(name: str, stack: str, params: Path, *upstream: dict[str, str], **overrides: str) -> dict[str, str]:
    """Create stack `name` from templates/<stack>.yaml with the parameters `make` would pass
    (airflow_stack.host.awsdeploy: the `upstream` outputs, then `params`, then `overrides`); its outputs."""
    template = AWS_DIR / "templates" / f"{stack}.yaml"
    sources = [("outputs", upstream_outputs) for upstream_outputs in upstream]
    sources += [(str(params), awsdeploy.read_params_file(params)), ("the command line", overrides)]
    chosen = awsdeploy.stack_parameters(template, sources, strict=[str(params), "the command line"])
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in chosen.items()],
    )
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return outputs(name)


def deploy_stacks(
    tmp_path: Path, ids: dict[str, str], data: dict[str, str] | None = None, apps: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """The data, apps and workers stacks of `staging`, wired as make wires them, with `data` and
    `apps` as extra command-line parameters of those stacks; their outputs by stack."""
    data_out = deploy(
        "staging-airflow-data", "data", params_file(tmp_path, "data", ids), EnvironmentName="staging", **(data or {})
    )
    apps_out = deploy(
        "staging-airflow-apps",
        "apps",
        params_file(tmp_path, "apps", ids),
        data_out,
        EnvironmentName="staging",
        Image=IMAGE,
        **(apps or {}),
    )
    workers_out = deploy(
        "staging-airflow-workers",
        "workers",
        params_file(tmp_path, "workers", ids),
        data_out,
        apps_out,
        EnvironmentName="staging",
        Image=IMAGE,
    )
    return {"data": data_out, "apps": apps_out, "workers": workers_out}
