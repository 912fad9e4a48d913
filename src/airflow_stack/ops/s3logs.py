"""S3 remote task logs: switched on by one setting, checked at start.

AIRFLOW_STACK_LOGS_S3_URL=s3://bucket/prefix turns on Airflow's remote logging with the
connection `s3_Airflow_Logs` (created by bootstrap) and removal of local copies after upload.
Explicit `AIRFLOW__LOGGING__*` variables still win. A component that writes or reads task
logs then puts and deletes a probe object before it starts, and refuses with the bucket's
name when it cannot. AIRFLOW_STACK_S3_ENDPOINT_URL points at an S3-compatible store.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError

URL_SETTING = settings.LOGS_S3_URL.name
ENDPOINT_SETTING = settings.S3_ENDPOINT_URL.name
CONN_ID = "s3_Airflow_Logs"


def drop_empty_aws_variables(env: MutableMapping[str, str]) -> None:
    """Compose passes unset optional variables as empty strings; boto3 reads an empty
    AWS_PROFILE as a profile named "" and fails, so empty AWS_* variables are removed."""
    for name in [n for n in env if n.startswith("AWS_") and not env[n]]:
        del env[name]


def parse(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StackError(
            f"{URL_SETTING}={url!r} is not an s3:// URL",
            setting=URL_SETTING,
            fix="write it as s3://BUCKET/PREFIX, e.g. s3://my-airflow-logs/prod, or unset it for local logs",
        )
    return parts.netloc, parts.path.strip("/")


def configure(env: MutableMapping[str, str]) -> None:
    """Turn remote logging on when AIRFLOW_STACK_LOGS_S3_URL is set."""
    drop_empty_aws_variables(env)
    url = settings.LOGS_S3_URL.read(env)  # an s3:// URL, or a refusal naming the setting
    if not url:
        return
    for setting, value in (
        (settings.REMOTE_LOGGING, "True"),
        (settings.REMOTE_BASE_LOG_FOLDER, url.rstrip("/")),
        (settings.REMOTE_LOG_CONN_ID, CONN_ID),
        (settings.DELETE_LOCAL_LOGS, "True"),
    ):
        setting.set_default(env, value)


def enabled(env: Mapping[str, str]) -> bool:
    folder = settings.REMOTE_BASE_LOG_FOLDER.raw(env) or ""
    return settings.REMOTE_LOGGING.read(env) and folder.startswith("s3://")


def probe(env: Mapping[str, str]) -> str:
    """Put and delete one object under the log prefix; return where, or refuse."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse(settings.REMOTE_BASE_LOG_FOLDER.raw(env) or "")
    key = f"{prefix}/.airflow-stack-probe/{socket.gethostname()}-{uuid.uuid4().hex}".lstrip("/")
    where = f"s3://{bucket}/{key}"
    client = boto3.client("s3", endpoint_url=settings.S3_ENDPOINT_URL.read(env))
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"airflow-stack remote logging probe\n")
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            problem = f"the task-log bucket {bucket!r} does not exist"
            fix = f"create bucket {bucket!r} or correct {URL_SETTING}"
        elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            problem = f"no permission to write and delete {where} ({code})"
            fix = "grant s3:PutObject and s3:DeleteObject on the log prefix to this component's role or keys"
        else:
            problem = f"writing the probe object {where} failed ({code or exc})"
            fix = f"check {URL_SETTING}, the credentials and {ENDPOINT_SETTING}"
        raise StackError(problem, setting=URL_SETTING, fix=fix) from None
    except BotoCoreError as exc:
        raise StackError(
            f"cannot reach S3 for the task-log bucket {bucket!r}: {exc}",
            setting=URL_SETTING,
            fix=f"check the credentials (task role, ~/.aws profile or keys) and {ENDPOINT_SETTING}",
        ) from None
    return where
