"""The security groups of the three stacks, deployed in moto in VPCs outside 10.0.0.0/8, evaluated
as EC2 evaluates them: a connection needs an egress rule of one of the source's groups and an
ingress rule of one of the destination's groups, each naming the other side's group or a range
holding its address. Every flow the stack needs must pass, none may rest on an address range
of the VPC, and DAG code's outbound traffic follows DagEgressCidr."""

from __future__ import annotations

import ipaddress

import boto3
import pytest

from tests.unit.aws_examples import IMAGE, REGION, deploy, deploy_stacks, network, params_file

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def deploy_all(tmp_path, cidr: str, **data_overrides: str) -> dict[str, dict[str, str]]:
    return deploy_stacks(tmp_path, network(cidr), data=data_overrides)


def service_groups() -> dict[str, set[str]]:
    """Each ECS service's security groups, by service name."""
    ecs = boto3.client("ecs", region_name=REGION)
    groups: dict[str, set[str]] = {}
    for cluster in ecs.list_clusters()["clusterArns"]:
        arns = ecs.list_services(cluster=cluster)["serviceArns"]
        for service in ecs.describe_services(cluster=cluster, services=arns)["services"]:
            vpc = service["networkConfiguration"]["awsvpcConfiguration"]
            groups[service["serviceName"]] = set(vpc["securityGroups"])
    return groups


def rules() -> dict[str, dict[str, list[dict]]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    return {
        g["GroupId"]: {"in": g.get("IpPermissions", []), "out": g.get("IpPermissionsEgress", [])}
        for g in ec2.describe_security_groups()["SecurityGroups"]
    }


def _covers(rule: dict, port: int) -> bool:
    return rule["IpProtocol"] == "-1" or (rule["IpProtocol"] == "tcp" and rule["FromPort"] <= port <= rule["ToPort"])


def _names(rule: dict, groups: set[str], address: str | None) -> bool:
    if groups & {pair["GroupId"] for pair in rule.get("UserIdGroupPairs", [])}:
        return True
    return address is not None and any(
        ipaddress.ip_address(address) in ipaddress.ip_network(r["CidrIp"]) for r in rule.get("IpRanges", [])
    )


def admits(source: set[str], destination: set[str] | None, port: int, address: str | None = None) -> bool:
    """Whether a task in groups `source` may open a TCP connection to `port` of a resource in
    groups `destination` (None: outside the VPC, at `address`), by their rules."""
    table = rules()
    out = any(_covers(r, port) and _names(r, destination or set(), address) for g in source for r in table[g]["out"])
    if destination is None:
        return out
    return out and any(_covers(r, port) and _names(r, source, None) for g in destination for r in table[g]["in"])


def group_of(name_tag: str) -> set[str]:
    ec2 = boto3.client("ec2", region_name=REGION)
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["*"]}])["SecurityGroups"]
    return {g["GroupId"] for g in found if {"Key": "Name", "Value": name_tag} in g.get("Tags", [])}


def data_store_groups() -> dict[str, set[str]]:
    """The groups of the database, Redis and EFS, by what they admit."""
    ec2 = boto3.client("ec2", region_name=REGION)
    by_port: dict[str, set[str]] = {}
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        for rule in group.get("IpPermissions", []):
            for port, store in ((5432, "database"), (6379, "redis"), (2049, "efs")):
                if rule.get("FromPort") == port:
                    by_port.setdefault(store, set()).add(group["GroupId"])
    return by_port


@pytest.mark.parametrize("cidr", ["172.31.0.0/16", "192.168.0.0/16"])
def test_every_flow_the_stack_needs_passes_in_a_vpc_outside_10_8(aws, tmp_path, cidr):
    stacks = deploy_all(tmp_path, cidr)
    services = service_groups()
    stores = data_store_groups()
    balancer = boto3.client("elbv2", region_name=REGION).describe_load_balancers()["LoadBalancers"][0]
    lb = set(balancer["SecurityGroups"])
    for service, groups in services.items():
        for store, port in (("redis", 6379), ("efs", 2049)):
            assert admits(groups, stores[store], port), (service, store)
        assert admits(groups, None, 443, "52.95.110.1"), (service, "AWS APIs over HTTPS")
    for service in ("api-server", "scheduler", "dag-processor", "triggerer", "monitor"):
        assert admits(services[service], stores["database"], 5432), service
    assert admits(services["worker"], services["api-server"], 8080), "worker -> execution API"
    assert admits(services["api-server"], services["worker"], 8793), "api-server -> worker log server"
    assert admits(services["api-server"], services["triggerer"], 8794), "api-server -> triggerer log server"
    assert admits(lb, services["api-server"], 8080), "load balancer -> api-server"
    assert admits(lb, services["flower"], 5555), "load balancer -> Flower"
    assert stacks["data"]["AirflowTasksSecurityGroupId"] in services["worker"]


def test_no_rule_rests_on_a_private_address_range(aws, tmp_path):
    deploy_all(tmp_path, "172.31.0.0/16")
    for group, table in rules().items():
        for rule in table["in"] + table["out"]:
            for cidr in (r["CidrIp"] for r in rule.get("IpRanges", [])):
                network_ = ipaddress.ip_network(cidr)
                assert not any(
                    network_.subnet_of(p) for p in PRIVATE if network_ != ipaddress.ip_network("127.0.0.1/32")
                ), (
                    group,
                    rule,
                )


def test_dag_code_reaches_any_system_by_default_and_only_dag_egress_cidr_when_set(aws, tmp_path):
    deploy_all(tmp_path, "172.31.0.0/16")
    services = service_groups()
    smtp = ("198.51.100.7", 25)
    assert admits(services["worker"], None, smtp[1], smtp[0])
    assert admits(services["triggerer"], None, smtp[1], smtp[0])
    assert not admits(services["api-server"], None, smtp[1], smtp[0]), "only DAG code gets open egress"


def test_dag_egress_can_be_narrowed(aws, tmp_path):
    deploy_all(tmp_path, "192.168.0.0/16", DagEgressCidr="198.51.100.0/24")
    worker = service_groups()["worker"]
    assert admits(worker, None, 25, "198.51.100.7")
    assert not admits(worker, None, 25, "203.0.113.9")
    assert admits(worker, None, 443, "203.0.113.9"), "HTTPS stays open for AWS APIs"


def test_the_network_stack_gives_the_others_their_vpc_subnets_and_endpoints(aws, tmp_path):
    """From an empty account: the network stack, then data, apps and workers from its outputs
    (the parameter files without VpcId and the subnets, as the README says)."""
    from tests.unit.aws_examples import AWS_DIR

    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="staging-airflow-network",
        TemplateBody=(AWS_DIR / "templates" / "network.yaml").read_text(),
        Parameters=[{"ParameterKey": "EnvironmentName", "ParameterValue": "staging"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName="staging-airflow-network")["Stacks"][0]
    net = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    certificate = boto3.client("acm", region_name=REGION).request_certificate(DomainName="airflow.example.com")
    ids = {
        "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000": certificate[
            "CertificateArn"
        ]
    }
    network_keys = ("VpcId", "PublicSubnetA", "PublicSubnetB", "PrivateSubnetA", "PrivateSubnetB")

    def params(stack: str):
        path = params_file(tmp_path, stack, ids)
        kept = [line for line in path.read_text().splitlines() if line.partition("=")[0] not in network_keys]
        path.write_text("\n".join(kept) + "\n")
        return path

    data = deploy("staging-airflow-data", "data", params("data"), net, EnvironmentName="staging")
    apps = deploy("staging-airflow-apps", "apps", params("apps"), net, data, EnvironmentName="staging", Image=IMAGE)
    deploy(
        "staging-airflow-workers", "workers", params("workers"), net, data, apps, EnvironmentName="staging", Image=IMAGE
    )

    ec2 = boto3.client("ec2", region_name=REGION)
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [net["VpcId"]]}])["VpcEndpoints"]
    services = {
        e["ServiceName"].rsplit(".", 1)[-1] if "ecr" not in e["ServiceName"] else e["ServiceName"].split(".", 3)[-1]
        for e in endpoints
    }
    assert services == {"s3", "ecr.api", "ecr.dkr", "secretsmanager", "logs", "monitoring"}, services
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [net["VpcId"]]}])["RouteTables"]
    through_nat = [t for t in tables if any(r.get("NatGatewayId") for r in t["Routes"])]
    assert len(through_nat) == 2  # one per private subnet, each zone through its own NAT gateway
    assert len({r["NatGatewayId"] for t in through_nat for r in t["Routes"] if r.get("NatGatewayId")}) == 2
    services_groups = service_groups()
    assert admits(services_groups["worker"], services_groups["api-server"], 8080)
    assert {
        s["serviceName"]
        for s in boto3.client("ecs", region_name=REGION).describe_services(
            cluster="staging-airflow-workers", services=["worker"]
        )["services"]
    } == {"worker"}
