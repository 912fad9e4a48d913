"""CloudFormation support in moto for the resource types our templates use and moto 5.2's
CloudFormation does not model (it skips them with a warning, then fails on their outputs).

Each model here creates its resource through the service's public API, served by moto itself
(ElastiCache, Secrets Manager, Cloud Map, Application Auto Scaling, CloudWatch, S3), so a
deployed stack can be inspected with boto3 like any other moto resource. Importing this module
registers them; only the in-process `mock_aws` mode sees them. It also gives moto's RDS
parameter group and EFS access point the physical id CloudFormation's `Ref` returns (the
name, the id): without one, moto's `Ref` yields the model object itself. And it computes a
stack's outputs after a change set runs (`aws cloudformation deploy` creates stacks that way),
which moto 5.2 leaves empty. And it stores an IAM role's inline policies as the JSON
documents AWS would, so that moto's IAM enforcement can read them, keeps a task
definition's roles, a service's network configuration and a security group's egress rules,
which moto's CloudFormation drops, and evaluates a policy's conditions as AWS
does (`permission`; moto's own evaluation turned the buckets' "deny unless HTTPS" into "deny
every call"). And it deletes a stack's secrets as CloudFormation does (at once, no recovery
window), takes a database's final snapshot under `DeletionPolicy: Snapshot`, and restores
`DBSnapshotIdentifier` (refusing what a restore refuses), where moto would create an empty one.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any, ClassVar

import boto3
from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend
from moto.core.common_models import CloudFormationModel
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ec2.models.security_groups import SecurityGroup
from moto.ecs.models import Cluster, Service, TaskDefinition, ecs_backends
from moto.efs.models import AccessPoint
from moto.iam import policy_conditions
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.models import Role, iam_backends
from moto.kms.models import Key
from moto.rds.models import DBInstance, DBParameterGroup, rds_backends
from moto.s3.models import FakeBucket
from moto.utilities.utils import get_partition

if not hasattr(DBParameterGroup, "physical_resource_id"):
    DBParameterGroup.physical_resource_id = property(lambda self: self.name)
if not hasattr(AccessPoint, "physical_resource_id"):
    AccessPoint.physical_resource_id = property(lambda self: self.access_point_id)

_create_role = Role.create_from_cloudformation_json.__func__


def _without_no_value(value: Any) -> Any:
    """CloudFormation drops `AWS::NoValue` (None here) from lists; moto keeps it."""
    if isinstance(value, dict):
        return {k: _without_no_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_no_value(v) for v in value if v is not None]
    return value


def _create_role_with_json_policies(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto stores a role's inline policies as the template's dicts, which its own IAM
    enforcement cannot read; store the JSON AWS would, and attach the managed policies moto has."""
    role = _create_role(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    for name, document in list(role.policies.items()):
        if not isinstance(document, str):
            role.policies[name] = json.dumps(_without_no_value(document))
    backend = iam_backends[account_id][get_partition(region_name)]
    known = {policy.arn for policy in backend.managed_policies.values()}
    for arn in cloudformation_json["Properties"].get("ManagedPolicyArns") or []:
        if arn in known:
            backend.attach_role_policy(arn, role.name)
    return role


if getattr(Role.create_from_cloudformation_json, "__name__", "") != "_create_role_with_json_policies":
    Role.create_from_cloudformation_json = classmethod(_create_role_with_json_policies)


def _create_task_definition(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's CloudFormation keeps only a task definition's containers, volumes and memory; keep
    what ECS would: its roles, CPU, network mode, compatibilities and platform."""
    properties = cloudformation_json["Properties"]
    return ecs_backends[account_id][region_name].register_task_definition(
        family=properties.get("Family", resource_name),
        container_definitions=remap_nested_keys(properties.get("ContainerDefinitions", []), pascal_to_camelcase),
        volumes=[_volume(volume) for volume in properties.get("Volumes", [])],
        network_mode=properties.get("NetworkMode"),
        requires_compatibilities=properties.get("RequiresCompatibilities"),
        cpu=properties.get("Cpu"),
        memory=properties.get("Memory"),
        task_role_arn=properties.get("TaskRoleArn"),
        execution_role_arn=properties.get("ExecutionRoleArn"),
        runtime_platform=remap_nested_keys(properties["RuntimePlatform"], pascal_to_camelcase)
        if "RuntimePlatform" in properties
        else None,
    )


def _create_service(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's CloudFormation keeps a service's cluster, task definition and count; keep its
    network configuration (subnets, security groups), launch type and tags as ECS would."""
    properties = cloudformation_json["Properties"]
    cluster = properties["Cluster"]
    definition = properties["TaskDefinition"]
    return ecs_backends[account_id][region_name].create_service(
        cluster.name if isinstance(cluster, Cluster) else cluster,
        resource_name,
        properties.get("DesiredCount"),
        task_definition_str=definition.family if isinstance(definition, TaskDefinition) else definition,
        launch_type=properties.get("LaunchType"),
        tags=[{"key": t["Key"], "value": str(t["Value"])} for t in properties.get("Tags", [])],
        network_configuration=remap_nested_keys(properties["NetworkConfiguration"], pascal_to_camelcase)
        if "NetworkConfiguration" in properties
        else None,
    )


if getattr(Service.create_from_cloudformation_json, "__name__", "") != "_create_service":
    Service.create_from_cloudformation_json = classmethod(_create_service)


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    """A task definition's volume as the ECS API spells it (EFS -> efs, IAM -> iam)."""
    out = {"name": volume["Name"]}
    if "EFSVolumeConfiguration" in volume:
        efs = volume["EFSVolumeConfiguration"]
        authorization = efs.get("AuthorizationConfig", {})
        out["efsVolumeConfiguration"] = {
            "fileSystemId": efs["FilesystemId"],
            "transitEncryption": efs.get("TransitEncryption", "DISABLED"),
            "authorizationConfig": {
                "accessPointId": authorization.get("AccessPointId"),
                "iam": authorization.get("IAM"),
            },
        }
    return out


if getattr(TaskDefinition.create_from_cloudformation_json, "__name__", "") != "_create_task_definition":
    TaskDefinition.create_from_cloudformation_json = classmethod(_create_task_definition)


def _bool_operation(expected: list[str] | str, actual: str) -> bool:
    values = expected if isinstance(expected, list) else [expected]
    return str(actual).lower() in {str(v).lower() for v in values}


policy_conditions.CONDITION_OPERATIONS.setdefault("Bool", _bool_operation)
policy_conditions.CONDITION_OPERATIONS.setdefault("ArnEquals", policy_conditions.string_equals_operation)


def _conditions_hold(conditions: dict | None, context: dict[str, str]) -> bool:
    if not conditions:
        return True
    for condition in policy_conditions.TrustRelationShipConditions(conditions):
        keys = condition.context_keys
        if any(key not in context for key in keys):
            return False  # a key the request does not carry: the condition is not met
        if not condition.verify_condition([context[key] for key in keys]):
            return False
    return True


def permission(document: str, action: str, resource: str, context: dict[str, str] | None = None) -> PermissionResult:
    """One policy document's answer for `action` on `resource` in a request carrying the
    condition keys `context`. moto's evaluator answers DENIED for any statement whose condition
    does not hold, even an Allow, or a Deny that therefore does not apply, and ignores `Bool`;
    here a statement whose condition does not hold is left out, as AWS leaves it out."""
    policy = json.loads(document)
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    applicable = [
        {k: v for k, v in statement.items() if k != "Condition"}
        for statement in statements
        if _conditions_hold(statement.get("Condition"), context or {})
    ]
    return IAMPolicy(json.dumps({**policy, "Statement": applicable})).is_action_permitted(action, resource)


def _bucket_permission_over_https(self, action: str, resource: str) -> Any:
    """The bucket policy's answer for a request over HTTPS (in-process boto3 calls are, as the
    components' are): moto otherwise reads "deny unless aws:SecureTransport" as "deny all"."""
    if self.policy is None:
        return PermissionResult.NEUTRAL
    return permission(self.policy.decode(), action, resource, {"aws:SecureTransport": "true"})


FakeBucket.get_permission = _bucket_permission_over_https

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_outputs(self, change_set_name, stack_name=None):
    _execute_change_set(self, change_set_name, stack_name)
    for stack in self.stacks.values():
        if stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            stack._parse_template()  # the change set's template, which moto stores but does not parse
            stack.output_map = stack._create_output_map()
            for export in stack.exports:  # which moto registers for create_stack only
                self.exports[export.name] = export


if getattr(CloudFormationBackend.execute_change_set, "__name__", "") != "_execute_change_set_with_outputs":
    CloudFormationBackend.execute_change_set = _execute_change_set_with_outputs


class _ApiBacked:
    """A resource created by one API call; `Ref` is its physical id, `GetAtt` reads `attrs`.
    Mixed in before CloudFormationModel: moto registers its direct subclasses only."""

    TYPE: ClassVar[str]
    SERVICE: ClassVar[str]
    ATTRIBUTES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, physical_id: str, attrs: dict[str, Any]):
        self.physical_resource_id = physical_id
        self.attrs = attrs

    @classmethod
    def cloudformation_type(cls) -> str:  # type: ignore[override]
        return cls.TYPE

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.attrs[attribute_name]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> _ApiBacked:
        client = boto3.client(cls.SERVICE, region_name=region_name)
        physical_id, attrs = cls.create(client, resource_name, cloudformation_json.get("Properties", {}))
        return cls(physical_id, attrs)

    @classmethod
    def create(cls, client: Any, name: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError


class CacheSubnetGroup(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::ElastiCache::SubnetGroup", "elasticache"

    @classmethod
    def create(cls, client, name, props):
        client.create_cache_subnet_group(
            CacheSubnetGroupName=name.lower(),
            CacheSubnetGroupDescription=props["Description"],
            SubnetIds=props["SubnetIds"],
        )
        return name.lower(), {}


class ReplicationGroup(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::ElastiCache::ReplicationGroup", "elasticache"
    ATTRIBUTES = ("PrimaryEndPoint.Address", "PrimaryEndPoint.Port")

    @classmethod
    def create(cls, client, name, props):
        group = client.create_replication_group(
            ReplicationGroupId=name.lower(),
            ReplicationGroupDescription=props["ReplicationGroupDescription"],
            Engine=props["Engine"],
            CacheNodeType=props["CacheNodeType"],
            NumCacheClusters=int(props["NumCacheClusters"]),
            AutomaticFailoverEnabled=props["AutomaticFailoverEnabled"] in (True, "true"),
            MultiAZEnabled=props["MultiAZEnabled"] in (True, "true"),
            TransitEncryptionEnabled=props["TransitEncryptionEnabled"] in (True, "true"),
            AtRestEncryptionEnabled=props["AtRestEncryptionEnabled"] in (True, "true"),
            AuthToken=props["AuthToken"],
            CacheSubnetGroupName=props["CacheSubnetGroupName"],
            SecurityGroupIds=props["SecurityGroupIds"],
        )["ReplicationGroup"]
        address = f"master.{group['ReplicationGroupId']}.cache.amazonaws.com"
        return group["ReplicationGroupId"], {"PrimaryEndPoint.Address": address, "PrimaryEndPoint.Port": "6379"}


class BucketPolicy(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::S3::BucketPolicy", "s3"

    @classmethod
    def create(cls, client, name, props):
        client.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
        return props["Bucket"], {}


def _egress_permission(rule: dict[str, Any]) -> dict[str, Any]:
    """An egress rule of a template as the EC2 API's IpPermission."""
    permission: dict[str, Any] = {"IpProtocol": str(rule["IpProtocol"])}
    if "FromPort" in rule:
        permission |= {"FromPort": int(rule["FromPort"]), "ToPort": int(rule["ToPort"])}
    if "DestinationSecurityGroupId" in rule:
        permission["UserIdGroupPairs"] = [{"GroupId": rule["DestinationSecurityGroupId"]}]
    else:
        permission["IpRanges"] = [{"CidrIp": rule["CidrIp"]}]
    return permission


class SecurityGroupEgress(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::EC2::SecurityGroupEgress", "ec2"

    @classmethod
    def create(cls, client, name, props):
        client.authorize_security_group_egress(GroupId=props["GroupId"], IpPermissions=[_egress_permission(props)])
        return f"{props['GroupId']}-egress-{name}", {}


_create_security_group = SecurityGroup.create_from_cloudformation_json.__func__


def _create_security_group_with_egress(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's CloudFormation ignores a group's `SecurityGroupEgress` and leaves EC2's default
    "all traffic anywhere"; EC2 replaces that default with the listed rules."""
    group = _create_security_group(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    egress = cloudformation_json["Properties"].get("SecurityGroupEgress")
    if egress:
        client = boto3.client("ec2", region_name=region_name)
        default = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        client.revoke_security_group_egress(GroupId=group.id, IpPermissions=[default])
        client.authorize_security_group_egress(GroupId=group.id, IpPermissions=[_egress_permission(r) for r in egress])
    return group


if getattr(SecurityGroup.create_from_cloudformation_json, "__name__", "") != "_create_security_group_with_egress":
    SecurityGroup.create_from_cloudformation_json = classmethod(_create_security_group_with_egress)


class Secret(_ApiBacked, CloudFormationModel):
    """`GenerateSecretString` is honoured for length and punctuation, as Secrets Manager does."""

    TYPE, SERVICE = "AWS::SecretsManager::Secret", "secretsmanager"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(cls, client, name, props):
        generate = props.get("GenerateSecretString", {})
        alphabet = string.ascii_letters + string.digits
        if generate.get("ExcludePunctuation") not in (True, "true"):
            alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
        value = props.get("SecretString") or "".join(
            secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32)))
        )
        arn = client.create_secret(
            Name=props.get("Name", name),
            SecretString=value,
            Description=props.get("Description", ""),
            KmsKeyId=props.get("KmsKeyId", ""),
        )["ARN"]
        return arn, {"Id": arn}

    def delete(self, account_id: str, region_name: str) -> None:
        """CloudFormation deletes a secret without a recovery window (its default for this type),
        so a new stack may create the name again; moto's stack deletion left it in place."""
        client = boto3.client(self.SERVICE, region_name=region_name)
        client.delete_secret(SecretId=self.physical_resource_id, ForceDeleteWithoutRecovery=True)


class PrivateDnsNamespace(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::ServiceDiscovery::PrivateDnsNamespace", "servicediscovery"
    ATTRIBUTES = ("Id", "Arn")

    @classmethod
    def create(cls, client, name, props):
        client.create_private_dns_namespace(Name=props["Name"], Vpc=props["Vpc"])
        namespace = next(n for n in client.list_namespaces()["Namespaces"] if n["Name"] == props["Name"])
        return namespace["Id"], {"Id": namespace["Id"], "Arn": namespace["Arn"]}


class DiscoveryService(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::ServiceDiscovery::Service", "servicediscovery"
    ATTRIBUTES = ("Id", "Arn", "Name")

    @classmethod
    def create(cls, client, name, props):
        service = client.create_service(
            Name=props["Name"],
            NamespaceId=props["NamespaceId"],
            DnsConfig=props["DnsConfig"],
            HealthCheckCustomConfig={"FailureThreshold": int(props["HealthCheckCustomConfig"]["FailureThreshold"])},
        )["Service"]
        return service["Id"], {"Id": service["Id"], "Arn": service["Arn"], "Name": service["Name"]}


class ScalableTarget(_ApiBacked, CloudFormationModel):
    """`Ref` is `resource-id|dimension|namespace`, as CloudFormation returns it."""

    TYPE, SERVICE = "AWS::ApplicationAutoScaling::ScalableTarget", "application-autoscaling"

    @classmethod
    def create(cls, client, name, props):
        client.register_scalable_target(
            ServiceNamespace=props["ServiceNamespace"],
            ResourceId=props["ResourceId"],
            ScalableDimension=props["ScalableDimension"],
            MinCapacity=int(props["MinCapacity"]),
            MaxCapacity=int(props["MaxCapacity"]),
            RoleARN=props["RoleARN"],
        )
        return f"{props['ResourceId']}|{props['ScalableDimension']}|{props['ServiceNamespace']}", {}


class ScalingPolicy(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::ApplicationAutoScaling::ScalingPolicy", "application-autoscaling"

    @staticmethod
    def _step_config(config: dict[str, Any]) -> dict[str, Any]:
        numbers = ("MetricIntervalLowerBound", "MetricIntervalUpperBound")
        steps = [
            {k: (float(v) if k in numbers else int(v)) for k, v in step.items()} for step in config["StepAdjustments"]
        ]
        return {**config, "Cooldown": int(config["Cooldown"]), "StepAdjustments": steps}

    @classmethod
    def create(cls, client, name, props):
        resource_id, dimension, namespace = props["ScalingTargetId"].split("|")
        arn = client.put_scaling_policy(
            PolicyName=props["PolicyName"],
            ServiceNamespace=namespace,
            ResourceId=resource_id,
            ScalableDimension=dimension,
            PolicyType=props["PolicyType"],
            StepScalingPolicyConfiguration=cls._step_config(props["StepScalingPolicyConfiguration"]),
        )["PolicyARN"]
        return arn, {}


class Alarm(_ApiBacked, CloudFormationModel):
    TYPE, SERVICE = "AWS::CloudWatch::Alarm", "cloudwatch"

    @staticmethod
    def _query(query: dict[str, Any]) -> dict[str, Any]:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            query = {**query, "MetricStat": {**stat, "Period": int(stat["Period"])}}
        return query

    @classmethod
    def create(cls, client, name, props):
        name = props.get("AlarmName", name)
        if "Metrics" in props:
            metric: dict[str, Any] = {"Metrics": [cls._query(q) for q in props["Metrics"]]}
        else:
            metric = {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
                "Statistic": props["Statistic"],
                "Period": int(props["Period"]),
            }
        client.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=props.get("AlarmDescription", ""),
            ComparisonOperator=props["ComparisonOperator"],
            Threshold=float(props["Threshold"]),
            EvaluationPeriods=int(props["EvaluationPeriods"]),
            TreatMissingData=props.get("TreatMissingData", "missing"),
            AlarmActions=props.get("AlarmActions", []),
            OKActions=props.get("OKActions", []),
            **metric,
        )
        return name, {}


# -- KMS: a key's policy as the JSON document AWS stores ------------------------------------------
_create_key = Key.create_from_cloudformation_json.__func__


def _create_key_with_json_policy(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto keeps a template's KeyPolicy as a dict, and its DescribeKey then fails reading it."""
    props = cloudformation_json["Properties"]
    if isinstance(props.get("KeyPolicy"), dict):
        cloudformation_json = {
            **cloudformation_json,
            "Properties": {**props, "KeyPolicy": json.dumps(props["KeyPolicy"])},
        }
    return _create_key(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)


if getattr(Key.create_from_cloudformation_json, "__name__", "") != "_create_key_with_json_policy":
    Key.create_from_cloudformation_json = classmethod(_create_key_with_json_policy)


# -- RDS: restoring a snapshot, and the final snapshot of DeletionPolicy: Snapshot --------------
# (instance, snapshot) for each database CloudFormation restored here, for the tests to read.
RESTORED: list[tuple[str, str]] = []
# What CloudFormation refuses next to DBSnapshotIdentifier (AWS::RDS::DBInstance's documentation).
_NOT_WITH_SNAPSHOT = ("CharacterSetName", "DBName", "KmsKeyId", "MasterUsername", "MasterUserPassword", "Timezone")
_create_db_instance = DBInstance.create_from_cloudformation_json.__func__


def _create_or_restore_db_instance(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto ignores DBSnapshotIdentifier and creates an empty database; restore the snapshot as
    CloudFormation does, and refuse the properties CloudFormation refuses with it."""
    props = cloudformation_json["Properties"]
    snapshot = props.get("DBSnapshotIdentifier")
    if not snapshot:
        database = _create_db_instance(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        database.deletion_protection = props.get("DeletionProtection") in (True, "true")  # moto drops it
        return database
    given = [name for name in _NOT_WITH_SNAPSHOT if props.get(name) is not None]
    if given:
        raise ValueError(f"the DBInstance restores {snapshot} and sets {', '.join(given)}, which a restore refuses")
    identifier = resource_name.replace("_", "-")
    database = rds_backends[account_id][region_name].restore_db_instance_from_db_snapshot(
        snapshot,
        {  # what a restore takes from the template rather than from the snapshot's instance
            "db_instance_identifier": identifier,
            "db_instance_class": props.get("DBInstanceClass"),
            "db_subnet_group_name": getattr(props.get("DBSubnetGroupName"), "name", None),
            "db_parameter_group_name": props.get("DBParameterGroupName"),
            "vpc_security_group_ids": props.get("VPCSecurityGroups"),
        },
    )
    database.deletion_protection = props.get("DeletionProtection") in (True, "true")
    RESTORED.append((identifier, snapshot))
    return database


if getattr(DBInstance.create_from_cloudformation_json, "__name__", "") != "_create_or_restore_db_instance":
    DBInstance.create_from_cloudformation_json = classmethod(_create_or_restore_db_instance)

_delete_resource = parsing.ResourceMap._delete_resource


def _delete_resource_with_final_snapshot(self, parsed_resource, resource_json):
    """DeletionPolicy: Snapshot takes a final snapshot of the database before deleting it; moto
    deletes it without one. A database with deletion protection is refused first, as RDS does."""
    if resource_json.get("DeletionPolicy") == "Snapshot" and isinstance(parsed_resource, DBInstance):
        backend = rds_backends[self._account_id][self._region_name]
        name = parsed_resource.db_instance_identifier
        if not backend.databases[name].deletion_protection:
            backend.create_db_snapshot(name, f"{name}-final-{secrets.token_hex(4)}")
    _delete_resource(self, parsed_resource, resource_json)


if getattr(parsing.ResourceMap._delete_resource, "__name__", "") != "_delete_resource_with_final_snapshot":
    parsing.ResourceMap._delete_resource = _delete_resource_with_final_snapshot

parsing.get_model_map.cache_clear()
