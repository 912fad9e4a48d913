"""Publish a DAG folder as a versioned artifact into a folder an HTTP server serves (host side,
standard library only): `make dag-artifact`, the tests and the benchmark use it.

    python3 -m airflow_stack.host.dagpublish DAGS_DIR VERSION --to ARTIFACTS_DIR [--name dags] [--zip]

Writes NAME-VERSION.tar.gz (or .zip) and its `.sha256` sidecar, then replaces the version
pointer LATEST (`SHA256  NAME-VERSION.tar.gz`) in one rename, so a poller sees the old pointer
or the new one, never a half-written file. Files are added in sorted order, with no owner.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import zipfile
from pathlib import Path

from airflow_stack.dags.releases import replace_file

POINTER = "LATEST"
_SKIP = {"__pycache__", ".git", ".pytest_cache"}


def _files(folder: Path) -> list[Path]:
    found = []
    for root, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP)
        found += [Path(root, f) for f in sorted(filenames) if not f.endswith(".pyc")]
    return found


def build_archive(folder: Path, target: Path) -> None:
    if target.name.endswith(".zip"):
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in _files(folder):
                archive.write(path, path.relative_to(folder).as_posix())
        return
    with tarfile.open(target, "w:gz") as tar:
        for path in _files(folder):
            info = tar.gettarinfo(str(path), path.relative_to(folder).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def publish(folder: Path, version: str, to: Path, *, name: str = "dags", fmt: str = "tar.gz") -> Path:
    """Write the artifact and its sidecar, then point LATEST at it; return the artifact."""
    to.mkdir(parents=True, exist_ok=True)
    artifact = to / f"{name}-{version}.{fmt}"
    scratch = to / f".{artifact.name}.partial"
    build_archive(folder, scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    os.chmod(scratch, 0o644)
    os.replace(scratch, artifact)
    replace_file(to / f"{artifact.name}.sha256", f"{digest}  {artifact.name}\n".encode())
    replace_file(to / POINTER, f"{digest}  {artifact.name}\n".encode())
    return artifact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagpublish", description=__doc__.split("\n\n")[0])
    parser.add_argument("dags", type=Path)
    parser.add_argument("version")
    parser.add_argument("--to", type=Path, required=True)
    parser.add_argument("--name", default="dags")
    parser.add_argument("--zip", action="store_true")
    args = parser.parse_args(argv)
    if not args.dags.is_dir():
        print(f"error: {args.dags} is not a folder of DAG files", file=sys.stderr)
        return 1
    artifact = publish(args.dags, args.version, args.to, name=args.name, fmt="zip" if args.zip else "tar.gz")
    print(f"published {artifact} and pointed {args.to / POINTER} at it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
