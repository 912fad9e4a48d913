"""The host side of `make -C deploy/aws`: the parameters each CloudFormation stack gets, and
the fernet key secret. Standard library only, like host.envfile; AWS is called through the `aws` CLI
(`AWS` in the environment may name another command, e.g. with `--profile`).

    python3 -m airflow_stack.host.awsdeploy params TEMPLATE PARAMS_FILE [--outputs-of STACK]... [KEY=VALUE]...
        print `Key=Value` for every parameter TEMPLATE declares, taken from the outputs of the
        named stacks, then the PARAMS_FILE (`Key=Value` lines, `#` comments), then KEY=VALUE;
        refuse when a parameter without a default gets no value, or a given key is unknown
    python3 -m airflow_stack.host.awsdeploy fernet-secret SECRET_ID
        put a new Fernet key into the secret unless it already holds a valid one
    python3 -m airflow_stack.host.awsdeploy retained STACK ENV
        when the data stack STACK does not exist: print `Key=Value` for what a deleted data stack
        of ENV kept (its KMS key, the secrets the database needs, the task-log bucket, the newest
        snapshot of its database), so that the new stack takes them over; nothing when it exists
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from airflow_stack.core.errors import StackError
from airflow_stack.host.envfile import fernet_key

_PARAMETER = re.compile(r"^  ([A-Za-z0-9]+):\s*$")
_SECTION = re.compile(r"^[A-Za-z]+:")
_OVERRIDE = re.compile(r"^[A-Za-z][A-Za-z0-9]*=")


def template_parameters(template: Path) -> dict[str, bool]:
    """Name -> has a Default, for each entry of the template's `Parameters:` section."""
    found: dict[str, bool] = {}
    current = None
    in_parameters = False
    for line in template.read_text().splitlines():
        if _SECTION.match(line):
            in_parameters = line.startswith("Parameters:")
            continue
        if not in_parameters:
            continue
        if match := _PARAMETER.match(line):
            current = match.group(1)
            found[current] = False
        elif current and line.strip().startswith("Default:"):
            found[current] = True
    return found


def read_params_file(path: Path) -> dict[str, str]:
    """`Key=Value` lines; blank lines and `#` comments are skipped."""
    if not path.is_file():
        raise StackError(
            f"{path} does not exist",
            setting=str(path),
            fix=f"copy deploy/aws/environments/example/{path.name} to {path} and fill it in",
        )
    values = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(
                f"{path} line {number} is not Key=Value: {raw!r}", setting=str(path), fix="write Key=Value"
            )
        values[key.strip()] = value.strip()
    return values


def stack_parameters(
    template: Path, sources: Sequence[tuple[str, Mapping[str, str]]], *, strict: Sequence[str] = ()
) -> dict[str, str]:
    """The template's parameters from `sources` (later ones win; outputs that are no parameter
    of this template are ignored). Keys in a source named in `strict` must be parameters."""
    declared = template_parameters(template)
    chosen: dict[str, str] = {}
    for name, values in sources:
        unknown = sorted(set(values) - set(declared))
        if name in strict and unknown:
            raise StackError(
                f"{name} sets {', '.join(unknown)}, which {template.name} does not declare",
                setting=name,
                fix=f"remove them, or check the spelling against the Parameters of {template}",
            )
        chosen.update({k: v for k, v in values.items() if k in declared})
    missing = [p for p, has_default in declared.items() if not has_default and p not in chosen]
    if missing:
        raise StackError(
            f"{template.name} needs {', '.join(missing)}, and no stack output or parameter file gives them",
            setting=", ".join(name for name, _ in sources) or template.name,
            fix="add them as Key=Value lines to the environment's parameter file",
        )
    return chosen


def aws(*args: str, stdin: str | None = None) -> str:
    command = [*shlex.split(os.environ.get("AWS", "aws")), *args]
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise StackError("the aws command is not installed", setting="AWS", fix="install the AWS CLI v2") from None
    if result.returncode != 0:
        raise StackError(
            f"`{' '.join(command[:4])} ...` failed: {result.stderr.strip()}", fix="check the AWS credentials and region"
        )
    return result.stdout


def stack_outputs(stack: str) -> dict[str, str]:
    text = aws(
        "cloudformation", "describe-stacks", "--stack-name", stack, "--query", "Stacks[0].Outputs", "--output", "json"
    )
    return {o["OutputKey"]: o["OutputValue"] for o in json.loads(text) or []}


def is_fernet_key(value: str) -> bool:
    try:
        return len(value) == 44 and len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def ensure_fernet_secret(secret_id: str) -> str:
    current = aws(
        "secretsmanager", "get-secret-value", "--secret-id", secret_id, "--query", "SecretString", "--output", "text"
    )
    if all(is_fernet_key(key) for key in current.strip().split(",")):
        return f"{secret_id} already holds a valid Fernet key; left unchanged"
    # The value goes through stdin, never on a command line.
    aws(
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        secret_id,
        "--secret-string",
        "file:///dev/stdin",
        stdin=fernet_key(),
    )
    return f"{secret_id}: the generated placeholder was replaced by a new Fernet key"


# The secrets a data stack keeps when it is deleted: (name under <env>/airflow/, its parameter).
RETAINED_SECRETS = {
    "fernet-key": "RetainedFernetKeySecretArn",
    "jwt-secret": "RetainedJwtSecretArn",
    "api-secret-key": "RetainedApiSecretKeyArn",
    "db-password": "RetainedDatabasePasswordArn",
    "admin-password": "RetainedAdminPasswordArn",
}


def _describe(*args: str) -> dict | None:
    """An AWS describe call's JSON, or None when the thing does not exist."""
    try:
        return json.loads(aws(*args, "--output", "json"))
    except StackError as exc:
        if re.search(r"does not exist|NotFound|not found|\(404\)|Not Found", exc.problem):
            return None
        raise


def retained(stack: str, env: str) -> tuple[dict[str, str], list[str]]:
    """The data stack's parameters that take over what a deleted stack of `env` kept, and one
    line per thing taken over; empty when `stack` exists (its parameters keep their values)."""
    if _describe("cloudformation", "describe-stacks", "--stack-name", stack) is not None:
        return {}, []
    chosen: dict[str, str] = {}
    notes: list[str] = []
    keys = set()
    for name, parameter in RETAINED_SECRETS.items():
        secret = _describe("secretsmanager", "describe-secret", "--secret-id", f"{env}/airflow/{name}")
        if secret is None:
            continue
        if secret.get("DeletedDate"):
            raise StackError(
                f"the secret {env}/airflow/{name} is scheduled for deletion",
                setting=parameter,
                fix=f"aws secretsmanager restore-secret --secret-id {env}/airflow/{name}, then run make data again",
            )
        chosen[parameter] = secret["ARN"]
        keys.add(secret.get("KmsKeyId", ""))
        notes.append(f"secret {env}/airflow/{name}")
    if keys:
        if len(keys) != 1 or "" in keys:
            raise StackError(
                f"the kept secrets of {env} are encrypted with different keys ({', '.join(sorted(keys))})",
                setting="RetainedDataKeyArn",
                fix="re-encrypt them with one key (aws secretsmanager update-secret --kms-key-id), then run make data",
            )
        key = _describe("kms", "describe-key", "--key-id", keys.pop())
        if key is None or key["KeyMetadata"]["KeyState"] != "Enabled":
            state = "missing" if key is None else key["KeyMetadata"]["KeyState"]
            raise StackError(
                f"the KMS key of the kept secrets of {env} is {state}",
                setting="RetainedDataKeyArn",
                fix="aws kms cancel-key-deletion and aws kms enable-key, then run make data again",
            )
        chosen["RetainedDataKeyArn"] = key["KeyMetadata"]["Arn"]
        notes.append(f"KMS key {key['KeyMetadata']['Arn']}")
    account = json.loads(aws("sts", "get-caller-identity", "--output", "json"))["Account"]
    bucket = f"{env}-airflow-task-logs-{account}"
    if _describe("s3api", "head-bucket", "--bucket", bucket) is not None:
        chosen["RetainedTaskLogsBucket"] = "true"
        notes.append(f"bucket {bucket}")
    snapshots = _describe(
        "rds", "describe-db-snapshots", "--db-instance-identifier", f"{env}-airflow", "--snapshot-type", "manual"
    )
    available = [s for s in (snapshots or {}).get("DBSnapshots", []) if s.get("Status") == "available"]
    if available:
        newest = max(available, key=lambda s: s.get("SnapshotCreateTime", ""))
        needed = [RETAINED_SECRETS[n] for n in ("fernet-key", "db-password") if RETAINED_SECRETS[n] not in chosen]
        if needed:
            raise StackError(
                f"the snapshot {newest['DBSnapshotIdentifier']} of {env} can be restored only with the secrets "
                f"it was made with, and {', '.join(needed)} found none",
                setting="DatabaseSnapshotIdentifier",
                fix=f"restore the secrets {env}/airflow/fernet-key and db-password (aws secretsmanager "
                "restore-secret), or delete the snapshots of the database for an empty one",
            )
        chosen["DatabaseSnapshotIdentifier"] = newest["DBSnapshotIdentifier"]
        notes.append(f"database snapshot {newest['DBSnapshotIdentifier']} (restored)")
    return chosen, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="awsdeploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    params = commands.add_parser("params")
    params.add_argument("template", type=Path)
    params.add_argument("params_file", type=Path)
    params.add_argument("--outputs-of", action="append", default=[], metavar="STACK")
    fernet = commands.add_parser("fernet-secret")
    fernet.add_argument("secret_id")
    kept = commands.add_parser("retained")
    kept.add_argument("stack")
    kept.add_argument("env")
    argv = list(sys.argv[1:] if argv is None else argv)
    # KEY=VALUE overrides may come anywhere (argparse cannot mix them with --outputs-of).
    overrides = [a for a in argv if _OVERRIDE.match(a)]
    args = parser.parse_args([a for a in argv if not _OVERRIDE.match(a)])
    try:
        if args.command == "fernet-secret":
            print(ensure_fernet_secret(args.secret_id))
            return 0
        if args.command == "retained":
            chosen, notes = retained(args.stack, args.env)
            for note in notes:
                print(f"data: taking over the kept {note}", file=sys.stderr)
            print(" ".join(f"{k}={v}" for k, v in chosen.items()))
            return 0
        sources = [(f"the outputs of {stack}", stack_outputs(stack)) for stack in args.outputs_of if stack]
        sources.append((str(args.params_file), read_params_file(args.params_file)))
        sources.append(("the command line", dict(o.partition("=")[::2] for o in overrides)))
        chosen = stack_parameters(args.template, sources, strict=[str(args.params_file), "the command line"])
        print(" ".join(f"{k}={v}" for k, v in chosen.items()))
        return 0
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
