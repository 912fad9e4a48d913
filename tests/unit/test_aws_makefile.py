"""`make -C deploy/aws` against moto's server: the AWS CLI (tools/awscli, locked on its own)
runs `cloudformation deploy` with the parameters the Makefile computes, `secrets` puts a valid
Fernet key once, `workers` takes the outputs of the data and apps stacks, and the refusals name
what is missing. (`apps` also runs the init task and waits for it to stop: moto's ECS tasks
never stop, so the apps stack is deployed here with the parameters the Makefile computes.)"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from airflow_stack.host import awsdeploy
from tests.unit import moto_cfn  # registers the extra CloudFormation types
from tests.unit.aws_examples import AWS_DIR, REGION, deploy, network, outputs, params_file

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(ROOT / ".venv-tools" / "bin" / "uv")
IMAGE = "registry.example.com/airflow-stack:1.0.0"


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch, tmp_path) -> dict[str, str]:
    """The environment `make` runs in: the AWS CLI pointed at moto, fake credentials."""
    variables = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        # For the boto3 clients of the extra CloudFormation types, inside moto's server.
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws = f"{UV} run --project {ROOT / 'tools' / 'awscli'} --frozen --quiet aws --endpoint-url {moto_endpoint}"
    return {**os.environ, "AWS": aws}


def make(aws_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(AWS_DIR), *args, f"AWS={aws_env['AWS']}"],
        capture_output=True,
        text=True,
        env=aws_env,
        timeout=600,
    )


def environment(tmp_path: Path, name: str) -> Path:
    """environments/<name>: the example files, pointed at a fresh VPC in moto."""
    folder = tmp_path / name
    folder.mkdir()
    ids = network()
    for stack in ("data", "apps", "workers"):
        params_file(folder, stack, ids)
    return folder


def test_data_secrets_and_workers_through_the_makefile(aws_env, tmp_path):
    params = environment(tmp_path, "mk")
    data = make(aws_env, "ENV=mk", f"PARAMS={params}", "data")
    assert data.returncode == 0, data.stdout + data.stderr
    assert "the generated placeholder was replaced by a new Fernet key" in data.stdout
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    key = secretsmanager.get_secret_value(SecretId="mk/airflow/fernet-key")["SecretString"]
    assert len(base64.urlsafe_b64decode(key)) == 32 and awsdeploy.is_fernet_key(key)

    again = make(aws_env, "ENV=mk", f"PARAMS={params}", "secrets")
    assert again.returncode == 0 and "left unchanged" in again.stdout, again.stdout + again.stderr
    assert secretsmanager.get_secret_value(SecretId="mk/airflow/fernet-key")["SecretString"] == key

    deploy(
        "mk-airflow-apps", "apps", params / "apps.params", outputs("mk-airflow-data"), EnvironmentName="mk", Image=IMAGE
    )

    # bootstrap: nothing to apply without the file; with it, the file goes into the environment's
    # secret, then the one-off task starts (moto's server answers RunTask for Fargate with a 500:
    # the task's run and wait are tested in tests/unit/test_ecsrun.py).
    nothing = make(aws_env, "ENV=mk", f"PARAMS={params}", "bootstrap")
    assert nothing.returncode == 0 and "no connections, variables or pools to apply" in nothing.stdout, nothing.stderr
    shutil.copy(AWS_DIR / "environments" / "example" / "connections.yaml", params / "connections.yaml")
    applied = make(aws_env, "ENV=mk", f"PARAMS={params}", "TIMEOUT=1", "bootstrap")
    assert (
        secretsmanager.get_secret_value(SecretId="mk/airflow/bootstrap")["SecretString"]
        == (params / "connections.yaml").read_text()
    )
    assert "connections.yaml is in arn:aws:secretsmanager:" in applied.stdout, applied.stdout + applied.stderr
    assert "RunTask" in applied.stderr or "bootstrap: started" in applied.stdout, applied.stderr

    workers = make(aws_env, "ENV=mk", f"PARAMS={params}", f"IMAGE={IMAGE}", "workers")
    assert workers.returncode == 0, workers.stdout + workers.stderr
    ecs = boto3.client("ecs", region_name=REGION)
    worker = ecs.describe_task_definition(taskDefinition="mk-airflow-worker")["taskDefinition"]["containerDefinitions"][
        0
    ]
    environment_of = {e["name"]: e["value"] for e in worker["environment"]}
    assert environment_of["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == outputs("mk-airflow-apps")["ExecutionApiUrl"]
    assert worker["image"] == IMAGE

    printed = make(aws_env, "ENV=mk", f"PARAMS={params}", "outputs")
    assert printed.returncode == 0, printed.stderr
    assert "UiUrl\thttps://airflow.example.com/" in printed.stdout
    assert "== mk-airflow-workers" in printed.stdout and "ClusterName\tmk-airflow-workers" in printed.stdout


def test_missing_settings_are_refused_with_the_fix(aws_env, tmp_path):
    no_env = make(aws_env, "data")
    assert no_env.returncode != 0 and "ENV is not set" in no_env.stderr
    no_folder = make(aws_env, "ENV=nowhere", "data")
    assert no_folder.returncode != 0 and "environments/nowhere does not exist" in no_folder.stderr
    params = environment(tmp_path, "bad")
    no_image = make(aws_env, "ENV=bad", f"PARAMS={params}", "workers")
    assert no_image.returncode != 0 and "IMAGE is not set" in no_image.stderr
    (params / "data.params").write_text((params / "data.params").read_text() + "DatabaseClass=db.t4g.large\n")
    typo = make(aws_env, "ENV=bad", f"PARAMS={params}", "data")
    assert typo.returncode != 0 and "DatabaseClass" in typo.stderr, typo.stdout + typo.stderr
    stacks = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    assert "bad-airflow-data" not in {s["StackName"] for s in stacks}


def test_a_deleted_environment_is_created_again_over_the_data_it_kept(aws_env, tmp_path):
    """`delete-data` keeps the KMS key, the secrets the database needs, the log bucket and a
    final snapshot (moto_cfn models the snapshot and CloudFormation's deletion of the other
    secrets); a new `make data` of the same ENV takes them over and restores the snapshot."""
    params = environment(tmp_path, "rc")
    first = make(aws_env, "ENV=rc", f"PARAMS={params}", "data")
    assert first.returncode == 0, first.stdout + first.stderr
    kept = outputs("rc-airflow-data")
    secretsmanager, s3 = boto3.client("secretsmanager", region_name=REGION), boto3.client("s3", region_name=REGION)
    fernet = secretsmanager.get_secret_value(SecretId="rc/airflow/fernet-key")["SecretString"]
    s3.put_object(Bucket=kept["TaskLogsBucketName"], Key="task-logs/old.log", Body=b"a log of before")

    rds = boto3.client("rds", region_name=REGION)
    assert rds.describe_db_instances(DBInstanceIdentifier="rc-airflow")["DBInstances"][0]["DeletionProtection"]
    rds.modify_db_instance(DBInstanceIdentifier="rc-airflow", DeletionProtection=False, ApplyImmediately=True)
    deleted = make(aws_env, "ENV=rc", f"PARAMS={params}", "CONFIRM=rc", "delete-data")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    (snapshot,) = rds.describe_db_snapshots(DBInstanceIdentifier="rc-airflow")["DBSnapshots"]

    again = make(aws_env, "ENV=rc", f"PARAMS={params}", "data")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"taking over the kept database snapshot {snapshot['DBSnapshotIdentifier']}" in again.stderr
    now = outputs("rc-airflow-data")
    for name in ("DataKeyArn", "FernetKeySecretArn", "JwtSecretArn", "ApiSecretKeyArn", "DatabasePasswordArn"):
        assert now[name] == kept[name], name
    assert now["AdminPasswordArn"] == kept["AdminPasswordArn"] and now["RedisAuthTokenArn"] != kept["RedisAuthTokenArn"]
    assert ("rc-airflow", snapshot["DBSnapshotIdentifier"]) in moto_cfn.RESTORED
    assert secretsmanager.get_secret_value(SecretId="rc/airflow/fernet-key")["SecretString"] == fernet
    assert s3.get_object(Bucket=now["TaskLogsBucketName"], Key="task-logs/old.log")["Body"].read() == b"a log of before"
    # Once the stack exists, nothing is taken over again: its parameters keep their values.
    assert awsdeploy.retained("rc-airflow-data", "rc") == ({}, [])


def test_a_kept_snapshot_without_its_secrets_is_refused_before_any_stack_is_made(aws_env, tmp_path):
    params = environment(tmp_path, "ns")
    rds = boto3.client("rds", region_name=REGION)
    rds.create_db_instance(
        DBInstanceIdentifier="ns-airflow", Engine="postgres", DBInstanceClass="db.t4g.small", AllocatedStorage=20
    )
    rds.create_db_snapshot(DBInstanceIdentifier="ns-airflow", DBSnapshotIdentifier="ns-airflow-final-1")
    rds.delete_db_instance(DBInstanceIdentifier="ns-airflow", SkipFinalSnapshot=True)
    refused = make(aws_env, "ENV=ns", f"PARAMS={params}", "data")
    assert refused.returncode != 0
    assert "ns-airflow-final-1 of ns can be restored only with the secrets" in refused.stderr, refused.stderr
    assert "RetainedFernetKeySecretArn, RetainedDatabasePasswordArn" in refused.stderr, refused.stderr
    stacks = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    assert "ns-airflow-data" not in {s["StackName"] for s in stacks}
