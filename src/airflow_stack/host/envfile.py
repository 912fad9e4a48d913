"""`make secrets` on the host: write .env once with generated secrets, and prepare the folders
the containers write to. Standard library only: it runs before any image exists.

    python3 -m airflow_stack.host.envfile [--env-file .env] [--logs-dir logs]
    python3 -m airflow_stack.host.envfile fernet-key
    python3 -m airflow_stack.host.envfile fernet-add | fernet-drop [--env-file .env]
        the .env edits of `make rotate-fernet-key`: put a new key in front of the current
        one, later keep only the first key
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

CONTAINER_UID = 50000  # the image's `airflow` user; group 0 lets any uid write where it must


def fernet_key() -> str:
    """A key as `cryptography.fernet.Fernet.generate_key()` makes it: 32 url-safe base64 bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def container_uid() -> int:
    """Run containers as the invoking user, so files in bind mounts stay theirs; root maps to 50000."""
    uid = os.getuid()
    return CONTAINER_UID if uid == 0 else uid


def aws_config_dir() -> str | None:
    """The host's AWS profile folder, mounted read-only where AWS calls happen."""
    path = Path.home() / ".aws"
    return str(path) if path.is_dir() else None


def render_env(uid: int) -> str:
    values = {
        "AIRFLOW_UID": str(uid),
        "AIRFLOW_FERNET_KEY": fernet_key(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(48),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "FLOWER_USERNAME": "flower",
        "FLOWER_PASSWORD": secrets.token_urlsafe(18),
    }
    aws = aws_config_dir()
    if aws:
        values["AWS_CONFIG_DIR"] = aws
    header = (
        "# Written once by `make secrets`: secrets for this stack. Keep this file private (mode 600)\n"
        "# and never commit it. Every container reads the same values from here, so the fernet\n"
        "# key, JWT secret and API secret key are identical everywhere. Variables: docs/local-stack.md.\n"
    )
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def write_env_file(path: Path, uid: int) -> bool:
    """Create `path` with fresh secrets; never touch an existing file. True when written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(render_env(uid))
    return True


def read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))


def set_env_value(path: Path, key: str, value: str) -> None:
    """Replace `key`'s line in an env file atomically, keeping its mode (600)."""
    lines = path.read_text().splitlines()
    found = False
    for index, line in enumerate(lines):
        if line.startswith(f"{key}="):
            lines[index], found = f"{key}={value}", True
    if not found:
        lines.append(f"{key}={value}")
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


def fernet_add(path: Path) -> str:
    """Put a new key in front: 'NEW,CURRENT'. Refuses when a rotation is already under way."""
    current = read_env_file(path).get("AIRFLOW_FERNET_KEY", "")
    if not current or "," in current:
        raise SystemExit(
            f"error: AIRFLOW_FERNET_KEY in {path} is {'a list' if current else 'missing'}; a rotation starts "
            "from exactly one key.\n       fix: finish the previous rotation with "
            f"`python3 -m airflow_stack.host.envfile fernet-drop --env-file {path}`, or run make secrets"
        )
    set_env_value(path, "AIRFLOW_FERNET_KEY", f"{fernet_key()},{current}")
    return "rotate-fernet-key: a new key is now first in AIRFLOW_FERNET_KEY; the current one is second"


def fernet_drop(path: Path) -> str:
    keys = read_env_file(path).get("AIRFLOW_FERNET_KEY", "").split(",")
    set_env_value(path, "AIRFLOW_FERNET_KEY", keys[0])
    return f"rotate-fernet-key: dropped {len(keys) - 1} old key(s) from AIRFLOW_FERNET_KEY"


def prepare_dir(path: Path, uid: int) -> None:
    """Make a bind-mounted folder writable by the container user (uid, group 0)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(path, uid, 0)
    path.chmod(0o775)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["env", "fernet-key", "fernet-add", "fernet-drop"], default="env")
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"))
    args = parser.parse_args(argv)
    if args.command == "fernet-key":
        print(fernet_key())
        return 0
    if args.command in ("fernet-add", "fernet-drop"):
        print((fernet_add if args.command == "fernet-add" else fernet_drop)(args.env_file))
        return 0
    uid = container_uid()
    if write_env_file(args.env_file, uid):
        print(f"secrets: wrote {args.env_file} with generated secrets (containers run as uid {uid})")
    else:
        print(f"secrets: {args.env_file} exists; left unchanged (delete it to generate new secrets)")
    prepare_dir(args.logs_dir, uid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
