"""The three stacks deploy in moto's CloudFormation, wired as `make -C deploy/aws` wires them
(airflow_stack.host.awsdeploy: the example parameter files, then the outputs of the stacks before),
and make the resources and outputs the deployment relies on. moto runs in-process; the types
its CloudFormation lacks come from tests/unit/moto_cfn.py, created through moto's own APIs."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode

from airflow_stack.host import awsdeploy
from airflow_stack.ops import scaler
from tests.unit.aws_examples import AWS_DIR, IMAGE, REGION, deploy, network, params_file

SECRET_NAMES = [
    "admin-password",
    "api-secret-key",
    "bootstrap",
    "db-password",
    "fernet-key",
    "flower-password",
    "jwt-secret",
    "redis-auth-token",
]


def task_definition(family: str) -> dict:
    return boto3.client("ecs", region_name=REGION).describe_task_definition(taskDefinition=family)["taskDefinition"]


def test_data_stack_makes_encrypted_stores_and_the_shared_secrets(stacks):
    data = stacks["data"]
    assert data["DatabaseEndpoint"] and data["RedisEndpoint"]
    database = boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"][0]
    assert (database["Engine"], database["StorageEncrypted"], database["MultiAZ"]) == ("postgres", True, False)
    assert database["BackupRetentionPeriod"] == 7
    assert database["PubliclyAccessible"] is False
    redis = boto3.client("elasticache", region_name=REGION).describe_replication_groups()["ReplicationGroups"][0]
    assert redis["TransitEncryptionEnabled"] is True and redis["AtRestEncryptionEnabled"] is True
    assert redis["AuthTokenEnabled"] is True

    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    listed = secretsmanager.list_secrets()["SecretList"]
    assert sorted(s["Name"] for s in listed) == [f"staging/airflow/{n}" for n in SECRET_NAMES]
    assert {s["KmsKeyId"] for s in listed} == {data["DataKeyArn"].rsplit("/", 1)[1]} or {
        s["KmsKeyId"] for s in listed
    } == {data["DataKeyArn"]}

    s3 = boto3.client("s3", region_name=REGION)
    bucket = data["TaskLogsBucketName"]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    # moto's bucket takes only encryption and tags from CloudFormation: the public access
    # block is checkov's (CKV_AWS_53-56), the lifecycle is read from the template.
    template, _ = decode(str(AWS_DIR / "templates" / "data.yaml"))
    rules = template["Resources"]["TaskLogsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules[0]["ExpirationInDays"] == {"Ref": "TaskLogExpirationDays"}
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    point = boto3.client("efs", region_name=REGION).describe_access_points(AccessPointId=data["DagsAccessPointId"])
    assert point["AccessPoints"][0]["PosixUser"] == {"Uid": 50000, "Gid": 0}


def test_high_availability_turns_on_multi_az_and_redis_failover(aws, tmp_path):
    ids = network()
    deploy(
        "prod-airflow-data", "data", params_file(tmp_path, "data", ids, HighAvailability="true"), EnvironmentName="prod"
    )
    database = boto3.client("rds", region_name=REGION).describe_db_instances()["DBInstances"][0]
    assert database["MultiAZ"] is True
    redis = boto3.client("elasticache", region_name=REGION).describe_replication_groups()["ReplicationGroups"][0]
    assert redis["AutomaticFailover"] == "enabled" and redis["MultiAZ"] == "enabled"


def test_apps_stack_runs_every_component_with_secrets_from_secrets_manager(stacks):
    apps = stacks["apps"]
    assert apps["UiUrl"] == "https://airflow.example.com/"
    assert apps["FlowerUrl"] == "http://localhost:5555/"  # not public: make -C deploy/aws flower forwards it
    assert apps["ExecutionApiUrl"] == "http://api-server.staging.airflow.internal:8080/execution/"

    ecs = boto3.client("ecs", region_name=REGION)
    arns = ecs.list_services(cluster=apps["ClusterName"])["serviceArns"]
    services = ecs.describe_services(cluster=apps["ClusterName"], services=arns)["services"]
    assert {s["serviceName"]: s["desiredCount"] for s in services} == {
        "api-server": 2,
        "scheduler": 2,
        "dag-processor": 1,
        "triggerer": 1,
        "flower": 1,
        "monitor": 1,
        "dag-sync": 1,
    }

    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    secret_arns = {s["ARN"] for s in secretsmanager.list_secrets()["SecretList"]}
    secret_values = {secretsmanager.get_secret_value(SecretId=arn)["SecretString"] for arn in secret_arns}
    for family in (
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "flower",
        "monitor",
        "dag-sync",
        "db-migrate",
        "bootstrap",
    ):
        container = task_definition(f"staging-airflow-{family}")["containerDefinitions"][0]
        assert container["image"] == IMAGE
        assert {s["valueFrom"] for s in container.get("secrets", [])} <= secret_arns, family
        plain = json.dumps(container.get("environment", []))
        assert not [v for v in secret_values if v in plain], f"{family} has a secret value in its environment"
    scheduler = task_definition("staging-airflow-scheduler")["containerDefinitions"][0]
    assert {s["name"] for s in scheduler["secrets"]} >= {
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW_STACK_DB_PASSWORD",
        "AIRFLOW_STACK_REDIS_PASSWORD",
    }

    elbv2 = boto3.client("elbv2", region_name=REGION)
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]
    assert apps["LoadBalancerDnsName"] == balancer["DNSName"]
    listeners = {
        listener["Port"]: listener
        for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    }
    assert sorted(listeners) == [80, 443]  # Flower is internal by default
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"
    assert listeners[443]["Protocol"] == "HTTPS" and listeners[443]["Certificates"]


def test_workers_have_no_database_credentials_and_the_monitor_sizes_them(stacks):
    worker = task_definition("staging-airflow-worker")["containerDefinitions"][0]
    names = {e["name"] for e in worker["environment"]} | {s["name"] for s in worker["secrets"]}
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in names
    assert "AIRFLOW_STACK_DB_PASSWORD" not in names
    environment = {e["name"]: e["value"] for e in worker["environment"]}
    assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == stacks["apps"]["ExecutionApiUrl"]
    assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("rediss://")
    assert worker["stopTimeout"] == 120

    # The monitor's ecs sink finds the service by its tags (airflow_stack.ops.scaler).
    monitor = task_definition("staging-airflow-monitor")["containerDefinitions"][0]
    monitor_env = {e["name"]: e["value"] for e in monitor["environment"]}
    assert "ecs" in monitor_env["AIRFLOW_STACK_MONITOR_SINKS"].split(",")
    assert monitor_env["AIRFLOW_STACK_WORKERS_CLUSTER"] == stacks["workers"]["ClusterName"]
    pools = scaler.EcsCluster(stacks["workers"]["ClusterName"]).pools()
    assert [(p.name, p.queue, p.minimum, p.maximum, p.concurrency, p.scale_in_after) for p in pools] == [
        ("worker", "default", 0, 8, 16, 600.0)
    ]
    # No Application Auto Scaling policy or alarm would fight the monitor over the count.
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    assert scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_a_parameter_file_with_an_unknown_key_is_refused_before_anything_deploys(tmp_path):
    path = tmp_path / "apps.params"
    path.write_text("VpcId=vpc-1\nSchedulerCuont=2\n")
    with pytest.raises(awsdeploy.StackError) as caught:
        awsdeploy.stack_parameters(
            AWS_DIR / "templates" / "apps.yaml", [(str(path), awsdeploy.read_params_file(path))], strict=[str(path)]
        )
    assert "SchedulerCuont" in caught.value.problem and caught.value.setting == str(path)


def test_the_public_listener_answers_404_for_the_execution_api_and_the_fingerprints(stacks):
    elbv2 = boto3.client("elbv2", region_name=REGION)
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    https = next(x for x in elbv2.describe_listeners(LoadBalancerArn=balancer)["Listeners"] if x["Port"] == 443)
    rules = [r for r in elbv2.describe_rules(ListenerArn=https["ListenerArn"])["Rules"] if not r["IsDefault"]]
    denied = {
        value: rule["Actions"][0]
        for rule in rules
        for condition in rule["Conditions"]
        if condition["Field"] == "path-pattern"
        for value in condition.get("PathPatternConfig", {}).get("Values", condition.get("Values", []))
    }
    for path in ("/execution/*", "/airflow-stack/*"):
        assert denied[path]["Type"] == "fixed-response", denied
        assert denied[path]["FixedResponseConfig"]["StatusCode"] == "404"
    assert min(int(r["Priority"]) for r in rules) == 1


def test_every_alarm_goes_to_the_environments_topic(stacks):
    topic = stacks["data"]["AlarmTopicArn"]
    alarms = {
        a["AlarmName"]: a for a in boto3.client("cloudwatch", region_name=REGION).describe_alarms()["MetricAlarms"]
    }
    expected = {
        "staging-airflow-monitor-silent": ("AirflowStack", "QueuedTasks"),
        "staging-airflow-scheduler-heartbeat": ("AirflowStack", "SchedulerHeartbeatAge"),
        "staging-airflow-queued-too-long": ("AirflowStack", "OldestQueuedTaskAge"),
        "staging-airflow-dag-sync-errors": ("AirflowStack", "DagSyncErrors-staging"),
        "staging-airflow-database-cpu": ("AWS/RDS", "CPUUtilization"),
        "staging-airflow-database-storage": ("AWS/RDS", "FreeStorageSpace"),
        "staging-airflow-database-connections": ("AWS/RDS", "DatabaseConnections"),
        "staging-airflow-redis-memory": ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"),
    }
    assert set(alarms) == set(expected)  # no release-age alarm unless DagReleaseAlarmSeconds is set
    for name, (namespace, metric) in expected.items():
        assert (alarms[name]["Namespace"], alarms[name]["MetricName"]) == (namespace, metric), name
        assert alarms[name]["AlarmActions"] == [topic] and alarms[name]["OKActions"] == [topic], name
    assert alarms["staging-airflow-monitor-silent"]["TreatMissingData"] == "breaching"  # silence is not "no work"


def test_the_dag_sync_error_filter_matches_what_dag_sync_logs():
    """The metric filter's terms are the words dag-sync writes when it rejects an artifact or a
    poll breaks (airflow_stack.dags.dagsync), so renaming either breaks this test, not the alarm."""
    import re

    from airflow_stack.dags import dagsync

    template = decode(str(AWS_DIR / "templates" / "apps.yaml"))[0]
    pattern = template["Resources"]["DagSyncErrorsFilter"]["Properties"]["FilterPattern"]
    terms = re.findall(r'\?"([^"]+)"', pattern)
    source = Path(dagsync.__file__).read_text()
    assert terms and all(term in source for term in terms), (terms, pattern)


def test_the_registry_scans_on_push_keeps_tags_immutable_and_expires_old_images(aws):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="airflow-stack-registry", TemplateBody=(AWS_DIR / "templates" / "registry.yaml").read_text()
    )
    ecr = boto3.client("ecr", region_name=REGION)
    repository = ecr.describe_repositories(repositoryNames=["airflow-stack"])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    # moto's CloudFormation drops the scanning setting; the template states it
    template = decode(str(AWS_DIR / "templates" / "registry.yaml"))[0]
    assert template["Resources"]["Repository"]["Properties"]["ImageScanningConfiguration"] == {"ScanOnPush": True}
    # and the lifecycle policy, which must be valid JSON once KeepImages is in
    text = template["Resources"]["Repository"]["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"]
    rules = json.loads(text.replace("${KeepImages}", "30"))["rules"]
    assert rules[0]["selection"]["countNumber"] == 30 and rules[0]["action"]["type"] == "expire"


def test_every_task_runs_on_the_cpu_the_apps_stack_names(stacks):
    ecs = boto3.client("ecs", region_name=REGION)
    families = [
        ecs.describe_task_definition(taskDefinition=a)["taskDefinition"]
        for a in ecs.list_task_definitions()["taskDefinitionArns"]
    ]
    assert families and all(d["runtimePlatform"]["cpuArchitecture"] == "X86_64" for d in families)
    assert stacks["apps"]["CpuArchitecture"] == "X86_64" and stacks["apps"]["WorkerConcurrency"] == "16"


def test_a_second_queue_gets_its_own_worker_service_in_the_same_cluster(stacks):
    """make workers QUEUE=gpu: its own stack, service, task family and log group, in the default
    queue's cluster; the monitor finds both services and sizes each on its own queue."""
    tmp_path, ids = stacks["tmp_path"], stacks["ids"]
    params = params_file(tmp_path, "workers", ids, MaxWorkers="2", WorkerCpu="4096", WorkerMemory="16384")
    gpu = deploy(
        "staging-airflow-workers-gpu",
        "workers",
        params,
        stacks["data"],
        stacks["apps"],
        EnvironmentName="staging",
        Image=IMAGE,
        Queue="gpu",
        Spot="true",
    )
    assert gpu["ClusterName"] == stacks["workers"]["ClusterName"]
    assert gpu["ServiceName"] == "worker-gpu" and gpu["LogGroupName"] == "/airflow/staging/workers-gpu"
    worker = task_definition("staging-airflow-worker-gpu")["containerDefinitions"][0]
    assert worker["command"] == ["run", "worker", "--queues", "gpu"]
    pools = {p.queue: p for p in scaler.EcsCluster(gpu["ClusterName"]).pools()}
    assert sorted(pools) == ["default", "gpu"] and (pools["gpu"].name, pools["gpu"].maximum) == ("worker-gpu", 2)
    assert scaler.Scaler(scaler.EcsCluster(gpu["ClusterName"])).step({"gpu": 5}, {}) == [
        "worker-gpu (gpu): 0 -> 1 workers"
    ]
    ecs = boto3.client("ecs", region_name=REGION)
    counts = ecs.describe_services(cluster=gpu["ClusterName"], services=["worker", "worker-gpu"])["services"]
    assert {s["serviceName"]: s["desiredCount"] for s in counts} == {"worker": 0, "worker-gpu": 1}
