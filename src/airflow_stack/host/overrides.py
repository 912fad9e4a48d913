"""`make up`: your Airflow options (config/airflow.env, git-ignored) reach every Airflow container.

Every Airflow service of docker-compose.yml reads two env files: the stack's defaults
(config/airflow-defaults.env), then yours (AIRFLOW_ENV_FILE, default config/airflow.env). A
value in a service's `environment:` wins over both, so an option the stack wires itself (the
fernet key, the database URL...) would be ignored there without a word. This check asks
compose: it renders the configuration with a probe value for each of your options and refuses,
naming the option and the services, when a probe does not arrive everywhere. It also refuses
lines that are not `NAME=value` and `AIRFLOW__` names Airflow would not read.

    python3 -m airflow_stack.host.overrides [check] [--file config/airflow.env] -- docker compose ...
    python3 -m airflow_stack.host.overrides template [--file config/airflow.env]   (make secrets)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Airflow reads AIRFLOW__{SECTION}__{KEY} in upper case only.
AIRFLOW_OPTION = re.compile(r"^AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+$")
TEMPLATE = """\
# Your Airflow options, read by every Airflow container (api-server, scheduler, dag-processor,
# triggerer, worker, Flower, the one-off jobs) after the stack's defaults
# (config/airflow-defaults.env). Git-ignored: this file is yours. One NAME=value per line; then
# `make up` (it recreates the containers whose options changed). docs/local-stack.md, "Airflow options".
#
# AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=false
# AIRFLOW__CELERY__WORKER_CONCURRENCY=8
# AIRFLOW__CELERY__WORKER_AUTOSCALE=16,2
# AIRFLOW__SMTP__SMTP_HOST=mail.example.com
"""


class Refused(Exception):
    """The override file cannot be applied as written; the message says why and how to fix it."""


def read_names(path: Path) -> list[str]:
    """The names the file sets, in order; Refused on a line compose would read otherwise."""
    names, problems = [], []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.removeprefix("export ").split("=", 1)[0].strip()
        if "=" not in line or not NAME.match(name):
            problems.append(f"{path}:{number}: not NAME=value: {line[:80]!r}")
        elif name.startswith("AIRFLOW__") and not AIRFLOW_OPTION.match(name):
            problems.append(
                f"{path}:{number}: {name}: Airflow reads AIRFLOW__SECTION__KEY in upper case only "
                f"(write {name.upper()})"
            )
        else:
            names.append(name)
    if problems:
        raise Refused("\n".join(problems))
    return names


def unreached(compose: list[str], names: list[str]) -> dict[str, list[str]]:
    """{name: [services it does not reach]}: compose renders the config with a probe file."""
    probe = f"airflow-stack-probe-{secrets.token_hex(8)}"
    with tempfile.NamedTemporaryFile("w", suffix=".env") as handle:
        handle.write("".join(f"{name}={probe}\n" for name in names))
        handle.flush()
        result = subprocess.run(
            [*compose, "config", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "AIRFLOW_ENV_FILE": handle.name},
        )
    if result.returncode != 0:
        raise Refused(f"docker compose config failed:\n{result.stderr.strip()}")
    services = json.loads(result.stdout)["services"]
    airflow_image = services["scheduler"]["image"]
    missed: dict[str, list[str]] = {}
    for service, spec in sorted(services.items()):
        if spec.get("image") != airflow_image:
            continue
        environment = spec.get("environment") or {}
        for name in names:
            if environment.get(name) != probe:
                missed.setdefault(name, []).append(service)
    return missed


def check(path: Path, compose: list[str]) -> str:
    """A one-line summary when every option reaches every Airflow container; Refused otherwise."""
    if not path.is_file():
        return f"airflow options: {path} does not exist; the stack's defaults apply"
    names = read_names(path)
    if not names:
        return f"airflow options: {path} sets none; the stack's defaults apply"
    missed = unreached(compose, names)
    if missed:
        lines = [f"  {name}: not in {', '.join(services)}" for name, services in missed.items()]
        raise Refused(
            f"{path} sets options that docker-compose.yml sets itself for some Airflow containers, so "
            "they would not apply there:\n" + "\n".join(lines) + "\n"
            "  fix: these are wired from .env (secrets, URLs, AIRFLOW_STACK_* settings): set the .env "
            "variable docker-compose.yml reads instead (docs/local-stack.md#airflow-options), and remove "
            "the lines from this file"
        )
    return f"airflow options: {len(names)} from {path} reach every Airflow container"


def write_template(path: Path) -> bool:
    """Create the commented file once, so that its place is obvious; never overwrite it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(TEMPLATE)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="airflow-options", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["check", "template"], default="check")
    parser.add_argument("--file", type=Path, default=Path("config/airflow.env"))
    args = parser.parse_args(argv[:split])
    compose = argv[split + 1 :] or ["docker", "compose"]
    if args.action == "template":
        if write_template(args.file):
            print(f"secrets: wrote {args.file} for your Airflow options (git-ignored; empty but for examples)")
        return 0
    try:
        print(check(args.file, compose))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
