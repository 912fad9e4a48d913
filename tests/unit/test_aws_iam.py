"""Each component's AWS calls, made under its own role as the templates render it, with moto's
IAM enforcement on.

The three stacks deploy in moto's CloudFormation (tests/unit/aws_examples.py); a component's
credentials come from `sts:AssumeRole` on the role its task definition names, so moto evaluates
exactly the policies that role has. Then `enable_iam_authentication()` (moto's
INITIAL_NO_AUTH_ACTION_COUNT = 0) turns enforcement on and the component's own code runs: the
S3 task-log probe, dag-sync's S3 source, the task-log writes and reads.

What moto's enforcement cannot see, checked with moto's own policy evaluator instead:
- moto authorizes S3 calls against the object's ARN, but every other service's calls against
  `*` with no condition keys, so a role that allows an action on one resource (a secret, a
  task, a file system) or under a condition (the metric namespace) is refused there. Those
  calls are recorded as the component makes them, or read from the task definitions, and
  evaluated for their real resource ARN and condition keys.
- moto answers 404 for a missing key whatever the role; S3 answers 403 without `s3:ListBucket`,
  which turns Airflow's "is there a log to append to" into a failed upload. The roles that
  write logs must hold `s3:ListBucket`, asserted below.
- bucket policies, SCPs, KMS key policies and the EFS file system policy are not evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication
from moto.iam.access_control import PermissionResult

from airflow_stack.core.errors import StackError
from airflow_stack.dags.dagsource import S3Source, SourceError
from airflow_stack.ops import monitor, s3logs, scaler
from airflow_stack.worker import deploydrain
from tests.unit import moto_cfn
from tests.unit.aws_examples import REGION, deploy_stacks, network

ACCOUNT = "123456789012"
DAGS_BUCKET = "staging-dag-artifacts"


@pytest.fixture
def env(aws, tmp_path):
    """The three stacks, with dag-sync reading an S3 source, and what the tests need of them."""
    stacks = deploy_stacks(
        tmp_path, network(), apps={"DagSource": f"s3://{DAGS_BUCKET}/dags/LATEST", "DagSourceBucket": DAGS_BUCKET}
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=DAGS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=DAGS_BUCKET, Key="dags/LATEST", Body=b"dags-1.0.0.tar.gz\n")
    return stacks


def task_definition(family: str) -> dict:
    return boto3.client("ecs", region_name=REGION).describe_task_definition(taskDefinition=family)["taskDefinition"]


def task_role(family: str) -> str:
    """The name of the task role the task definition `family` names."""
    return task_definition(family)["taskRoleArn"].rsplit("/", 1)[-1]


def policies(role: str) -> list[str]:
    """The role's policy documents, inline and attached, as moto holds them."""
    iam = boto3.client("iam", region_name=REGION)
    documents = [
        json.dumps(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]
        documents.append(json.dumps(document["Document"]))
    return documents


def allows(role: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """The role's policies, evaluated for one action on one resource with these condition keys."""
    results = [moto_cfn.permission(document, action, resource, context) for document in policies(role)]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


@contextmanager
def acting_as(monkeypatch, family: str) -> Iterator[str]:
    """Credentials of the task role of `family` (AssumeRole) in the environment, and IAM enforced."""
    arn = task_definition(family)["taskRoleArn"]
    credentials = boto3.client("sts", region_name=REGION).assume_role(RoleArn=arn, RoleSessionName="component")
    keys = credentials["Credentials"]
    with monkeypatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
        patch.setenv("AWS_SESSION_TOKEN", keys["SessionToken"])
        patch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it first read
        with enable_iam_authentication():
            yield arn.rsplit("/", 1)[-1]


def container_environment(family: str) -> dict[str, str]:
    container = task_definition(family)["containerDefinitions"][0]
    return {pair["name"]: pair["value"] for pair in container.get("environment", [])}


# The components that write or read task logs.
LOG_COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer", "worker"]


@pytest.mark.parametrize("component", LOG_COMPONENTS)
def test_a_component_passes_its_task_log_probe_under_its_own_role(env, monkeypatch, component):
    family = f"staging-airflow-{component}"
    component_env = {**container_environment(family), "AIRFLOW_STACK_S3_ENDPOINT_URL": ""}
    s3logs.configure(component_env)
    assert s3logs.enabled(component_env)
    with acting_as(monkeypatch, family):
        where = s3logs.probe(component_env)
    assert where.startswith(f"s3://{env['data']['TaskLogsBucketName']}/task-logs/.airflow-stack-probe/")


def test_a_role_without_delete_fails_the_probe_with_a_clear_refusal(env, monkeypatch):
    """The check above can fail: the probe's delete, denied, is a refusal naming the fix."""
    role = task_role("staging-airflow-worker")
    iam = boto3.client("iam", region_name=REGION)
    document = json.loads(json.dumps(iam.get_role_policy(RoleName=role, PolicyName="worker")["PolicyDocument"]))
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != "s3:DeleteObject"] or ["s3:GetBucketLocation"]
    iam.put_role_policy(RoleName=role, PolicyName="worker", PolicyDocument=json.dumps(document))
    component_env = container_environment("staging-airflow-worker")
    s3logs.configure(component_env)
    with acting_as(monkeypatch, "staging-airflow-worker"), pytest.raises(StackError) as refused:
        s3logs.probe(component_env)
    assert "no permission to write and delete" in refused.value.problem
    assert "s3:DeleteObject" in refused.value.fix


def airflow_log_write_then_read(bucket: str, key: str, writer, reader) -> str:
    """The S3 calls Airflow's S3RemoteLogIO makes (amazon provider of Airflow 3.3.2): upload
    asks whether the log exists (HeadObject; 404 means no), reads it to append, puts it; the
    UI's read lists the prefix and gets each key."""
    from botocore.exceptions import ClientError

    try:
        writer.head_object(Bucket=bucket, Key=key)
        old = writer.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey"), exc.response
        old = ""
    writer.put_object(Bucket=bucket, Key=key, Body=(old + "task ran\n").encode())
    listed = reader.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0])
    return "".join(reader.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode() for o in listed["Contents"])


@pytest.mark.parametrize("writer", ["triggerer", "worker"])
def test_a_task_log_written_under_the_writers_role_is_read_under_the_api_servers(env, monkeypatch, writer):
    bucket = env["data"]["TaskLogsBucketName"]
    key = "task-logs/dag_id=d/run_id=r/task_id=t/attempt=1.log"
    with acting_as(monkeypatch, f"staging-airflow-{writer}"):
        writes = boto3.client("s3", region_name=REGION)
        writes.list_objects_v2(Bucket=bucket, Prefix=key)  # the writer's role must hold s3:ListBucket
    with acting_as(monkeypatch, "staging-airflow-api-server"):
        reads = boto3.client("s3", region_name=REGION)
    with enable_iam_authentication():
        assert airflow_log_write_then_read(bucket, key, writes, reads) == "task ran\n"
        assert airflow_log_write_then_read(bucket, key, writes, reads) == "task ran\ntask ran\n"


def test_a_worker_may_delete_its_probe_object_but_no_task_log(env, monkeypatch):
    bucket = env["data"]["TaskLogsBucketName"]
    key = "task-logs/dag_id=d/run_id=r/task_id=t/attempt=1.log"
    boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=b"log\n")
    with acting_as(monkeypatch, "staging-airflow-worker"):
        worker = boto3.client("s3", region_name=REGION)
        with pytest.raises(worker.exceptions.ClientError, match="AccessDenied"):
            worker.delete_object(Bucket=bucket, Key=key)


def test_the_log_bucket_refuses_requests_without_tls(env):
    s3 = boto3.client("s3", region_name=REGION)
    bucket = env["data"]["TaskLogsBucketName"]
    policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    resource = f"arn:aws:s3:::{bucket}/task-logs/x"
    plain = moto_cfn.permission(policy, "s3:GetObject", resource, {"aws:SecureTransport": "false"})
    assert plain == PermissionResult.DENIED
    assert moto_cfn.permission(policy, "s3:GetObject", resource, {"aws:SecureTransport": "true"}) != plain


def test_no_role_allows_a_wildcard_action(env):
    iam = boto3.client("iam", region_name=REGION)
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("staging-airflow-")]
    assert len(roles) >= 7
    for role in roles:
        for document in map(json.loads, policies(role)):
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not [a for a in actions if "*" in a], (role, statement)


def test_dag_sync_reads_its_s3_source_under_its_role_and_nothing_else(env, monkeypatch, tmp_path):
    with acting_as(monkeypatch, "staging-airflow-dag-sync"):
        source = S3Source(f"s3://{DAGS_BUCKET}/dags/LATEST", endpoint_url=None, timeout=5, max_bytes=1 << 20)
        offer = source.check({}, tmp_path)
        assert offer is not None and offer.artifact == f"s3://{DAGS_BUCKET}/dags/dags-1.0.0.tar.gz"
        bucket = env["data"]["TaskLogsBucketName"]
        with pytest.raises(SourceError, match="no permission to read"):
            S3Source(f"s3://{bucket}/task-logs/x.tar.gz", endpoint_url=None, timeout=5, max_bytes=1).check({}, tmp_path)


IAM_PREFIX = {"monitoring": "cloudwatch"}  # botocore's signing name -> IAM's action prefix


def recorded_calls(monkeypatch) -> list[tuple[str, str, dict]]:
    """Record (service, operation, parameters) of every boto3 call made from now on."""
    calls: list[tuple[str, str, dict]] = []
    original = boto3.client

    def client(*args, **kwargs):
        made = original(*args, **kwargs)
        service = made.meta.service_model.signing_name

        def record(params, model, **_):
            calls.append((service, model.name, params))

        made.meta.events.register("provide-client-params.*.*", record)
        return made

    monkeypatch.setattr(boto3, "client", client)
    return calls


def test_the_monitor_puts_its_metrics_under_its_role(env, monkeypatch):
    """PutMetricData is allowed only in the monitor's namespace (a condition moto's enforcement
    does not evaluate): the calls the real sink makes are evaluated for it."""
    component_env = container_environment("staging-airflow-monitor")
    role = task_role("staging-airflow-monitor")
    calls = recorded_calls(monkeypatch)
    send = monitor.cloudwatch_sink(component_env)
    send(monitor.Sample(queued={"default": 3}, running={"default": 1}, scheduler_heartbeat_age=2.0))
    calls = list(calls)  # what the sink made; the checks below make calls of their own
    assert calls and all(op == "PutMetricData" for _, op, _ in calls)
    for service, operation, params in calls:
        assert allows(
            role, f"{IAM_PREFIX.get(service, service)}:{operation}", "*", {"cloudwatch:namespace": params["Namespace"]}
        ), params
    assert not allows(role, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SomeoneElse"})


def test_the_monitor_sizes_the_worker_services_and_no_others(env, monkeypatch):
    """The scaler's calls through moto (ECS enforcement there is against `*`), then each call
    evaluated for its real ARN and the `ecs:cluster` key."""
    component_env = container_environment("staging-airflow-monitor")
    role = task_role("staging-airflow-monitor")
    calls = recorded_calls(monkeypatch)
    cluster = scaler.EcsCluster(component_env["AIRFLOW_STACK_WORKERS_CLUSTER"])
    pools = cluster.pools()
    cluster.set_desired(pools[0].service, 3)
    calls = list(calls)
    workers_cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{env['workers']['ClusterName']}"
    service = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{env['workers']['ClusterName']}/worker"
    assert [op for _, op, _ in calls] == ["ListServices", "DescribeServices", "UpdateService"]
    assert allows(role, "ecs:ListServices", "*", {"ecs:cluster": workers_cluster})
    assert allows(role, "ecs:DescribeServices", service) and allows(role, "ecs:UpdateService", service)
    apps_cluster = env["apps"]["ClusterName"]
    assert not allows(role, "ecs:ListServices", "*", {"ecs:cluster": workers_cluster.replace("workers", "apps")})
    assert not allows(role, "ecs:UpdateService", f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{apps_cluster}/api-server")


def test_a_worker_may_protect_its_own_tasks_from_scale_in_and_no_others(env):
    """The ECS agent calls UpdateTaskProtection with the task's role (moto has no such call)."""
    role = task_role("staging-airflow-worker")
    cluster = env["workers"]["ClusterName"]
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/0123456789abcdef0123456789abcdef"
    for action in ("ecs:UpdateTaskProtection", "ecs:GetTaskProtection"):
        assert allows(role, action, task), (action, task)
    apps_task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{env['apps']['ClusterName']}/0123456789abcdef0123456789abcdef"
    assert not allows(role, "ecs:UpdateTaskProtection", apps_task)


def test_a_worker_may_read_its_own_task_and_service_deployments_and_no_others(env, monkeypatch):
    """The deployment drain's calls as it makes them (moto's ECS enforcement is against `*`), each
    evaluated for its real ARN in the workers cluster, and refused in the apps cluster."""
    role = task_role("staging-airflow-worker")
    cluster = env["workers"]["ClusterName"]
    calls = recorded_calls(monkeypatch)
    deployments = deploydrain.EcsDeployments()
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/0123456789abcdef0123456789abcdef"
    with pytest.raises(deploydrain.DrainError, match="does not know"):
        deployments.identify(cluster, task)
    assert deployments.primary(cluster, "worker")[0].startswith("ecs-svc/")
    assert [op for _, op, _ in calls] == ["DescribeTasks", "DescribeServices"]
    service = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/worker"
    assert allows(role, "ecs:DescribeTasks", task) and allows(role, "ecs:DescribeServices", service)
    apps = env["apps"]["ClusterName"]
    assert not allows(role, "ecs:DescribeTasks", task.replace(cluster, apps))
    assert not allows(role, "ecs:DescribeServices", f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{apps}/api-server")


def task_definitions() -> list[dict]:
    ecs = boto3.client("ecs", region_name=REGION)
    arns = ecs.list_task_definitions()["taskDefinitionArns"]
    return [ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"] for arn in arns]


def test_each_execution_role_reads_exactly_the_secrets_its_task_definitions_inject(env):
    definitions = task_definitions()
    assert definitions
    for definition in definitions:
        role = definition["executionRoleArn"].rsplit("/", 1)[-1]
        for container in definition["containerDefinitions"]:
            for secret in container.get("secrets", []):
                assert allows(role, "secretsmanager:GetSecretValue", secret["valueFrom"]), (
                    definition["family"],
                    secret["name"],
                )
        assert allows(role, "kms:Decrypt", env["data"]["DataKeyArn"]), definition["family"]
    worker_execution = next(d for d in definitions if d["family"].endswith("-worker"))["executionRoleArn"]
    assert not allows(
        worker_execution.rsplit("/", 1)[-1], "secretsmanager:GetSecretValue", env["data"]["DatabasePasswordArn"]
    ), "the workers' execution role can read the database password"


def test_each_task_role_may_mount_the_dag_store_as_its_volume_needs(env):
    file_system = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/{env['data']['DagsFileSystemId']}"
    checked = 0
    for definition in task_definitions():
        volumes = {
            v["name"]: v["efsVolumeConfiguration"]
            for v in definition.get("volumes", [])
            if v.get("efsVolumeConfiguration", {}).get("authorizationConfig", {}).get("iam") == "ENABLED"
        }
        if not volumes:
            continue
        role = definition["taskRoleArn"].rsplit("/", 1)[-1]
        mounts = [m for c in definition["containerDefinitions"] for m in c.get("mountPoints", [])]
        for mount in (m for m in mounts if m["sourceVolume"] in volumes):
            assert allows(role, "elasticfilesystem:ClientMount", file_system), definition["family"]
            writes = not mount.get("readOnly", False)
            assert allows(role, "elasticfilesystem:ClientWrite", file_system) == writes, (definition["family"], mount)
            checked += 1
    assert checked
