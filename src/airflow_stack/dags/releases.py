"""The DAG release store on shared storage, and the atomic switch between releases.

Layout under AIRFLOW_STACK_DAG_RELEASES_DIR (a compose volume locally, EFS on AWS):

    releases/<version>/          one extracted, validated artifact each; never changed once there
    current -> releases/<version>   relative symlink, replaced in one rename(2): readers see the
                                 old release or the new one, never a mix
    status.json                  what dag-sync last did (replaced atomically); read by
                                 `dag-sync status`, the healthcheck and the monitor
    .staging/                    downloads and extractions in progress (same filesystem, so the
                                 move into releases/ is a rename); cleared at start
    .lock                        flock held by whoever changes the store (the service, rollback)

Standard library only: the Airflow DAG bundle (dagbundle) and host tools read it too.
`dags.parsing` points an Airflow component at the store when AIRFLOW_STACK_DAG_RELEASES_DIR is set.
"""

from __future__ import annotations

import calendar
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError

RELEASES_DIR_SETTING = settings.DAG_RELEASES_DIR.name
DEFAULT_RELEASES_DIR = Path("/opt/airflow/dag-releases")  # dag-sync's store when the setting is unset
BUNDLE_NAME = "dags-folder"  # the name of Airflow's default bundle: switching modes keeps every DAG's identity
MAX_STATUS_BYTES = 1024 * 1024  # status.json is read whole by the probe, the monitor and `status`
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_version(version: str) -> str:
    """A version becomes a folder name: letters, digits and . _ + - only, 128 at most."""
    if not _VERSION.match(version) or version.endswith((".tmp", ".partial")):
        raise ValueError(
            f"version {version!r} is not a safe folder name (letters, digits, '.', '_', '+', '-'; "
            "at most 128; not starting with '.' or '-')"
        )
    return version


_ISO = "%Y-%m-%dT%H:%M:%SZ"


def now_iso() -> str:
    return time.strftime(_ISO, time.gmtime())


def age_seconds(iso: str) -> float:
    """Seconds since a time written by now_iso()."""
    return time.time() - calendar.timegm(time.strptime(iso, _ISO))


@dataclass
class Status:
    """What dag-sync last did. Times are UTC ISO 8601; `history` is activation order."""

    source: str = ""
    current_version: str | None = None
    pinned: bool = False  # set by rollback: new versions are not activated until `resume`
    last_check: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    last_activation: str | None = None
    history: list[str] = field(default_factory=list)
    # conditional-request state of the source (ETag, Last-Modified, the version they named)
    source_state: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> Status:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def store_of(env: Mapping[str, str]) -> Store:
    """The store AIRFLOW_STACK_DAG_RELEASES_DIR names, or the default one."""
    return Store(settings.DAG_RELEASES_DIR.read(env) or DEFAULT_RELEASES_DIR)


class Store:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.releases = self.root / "releases"
        self.current = self.root / "current"
        self.staging = self.root / ".staging"
        self.status_file = self.root / "status.json"

    # -- reading (safe without the lock) ----------------------------------------------

    def current_version(self) -> str | None:
        try:
            return Path(os.readlink(self.current)).name
        except (FileNotFoundError, OSError):
            return None

    def release_path(self, version: str) -> Path:
        return self.releases / check_version(version)

    def has(self, version: str) -> bool:
        try:
            return self.release_path(version).is_dir()
        except ValueError:
            return False

    def versions(self) -> list[str]:
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir() if p.is_dir())

    def read_status(self) -> Status:
        try:
            with open(self.status_file, "rb") as handle:
                raw = handle.read(MAX_STATUS_BYTES + 1)
            if len(raw) > MAX_STATUS_BYTES:
                raise ValueError(f"it is over {MAX_STATUS_BYTES // 1024} KiB")
            return Status.from_json(raw.decode("utf-8", "replace"))
        except FileNotFoundError:
            return Status(current_version=self.current_version())
        except (ValueError, TypeError) as exc:
            raise StackError(
                f"{self.status_file} is not a valid status record ({exc})",
                setting=RELEASES_DIR_SETTING,
                fix=f"delete {self.status_file}; dag-sync writes a new one on its next poll",
            ) from None

    # -- changing (under the lock) -----------------------------------------------------

    def prepare(self) -> None:
        """Create the layout, check it is writable, and clear staging left by a crash."""
        try:
            for folder in (self.releases, self.staging):
                folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise StackError(
                f"the DAG release folder {self.root} is not writable ({exc.strerror})",
                setting=RELEASES_DIR_SETTING,
                fix=f"mount a volume there writable by uid {os.getuid()} or group 0 (EFS: the access point's uid)",
            ) from None
        for leftover in self.staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def staged(self, prefix: str) -> Iterator[Path]:
        """A scratch folder under .staging, removed afterwards whatever happened."""
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.staging))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def add(self, extracted: Path, version: str) -> Path:
        """Move an extracted, validated folder into releases/ (one rename)."""
        target = self.release_path(version)
        os.chmod(extracted, 0o755)
        os.rename(extracted, target)
        return target

    def activate(self, version: str) -> None:
        """Point `current` at releases/<version> in one rename: readers never see a mix."""
        if not self.has(version):
            raise StackError(
                f"release {version!r} is not in {self.releases}",
                setting=RELEASES_DIR_SETTING,
                fix=f"choose one of: {', '.join(self.versions()) or '(none yet)'}",
            )
        link = self.root / f".current-{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        os.symlink(f"releases/{version}", link)
        os.replace(link, self.current)
        _fsync_dir(self.root)

    def write_status(self, status: Status) -> None:
        status.current_version = self.current_version()
        replace_file(self.status_file, (json.dumps(asdict(status), indent=2, sort_keys=True) + "\n").encode())

    def prune(self, keep: int, history: list[str]) -> list[str]:
        """Delete the oldest releases beyond `keep`, never the current one. Order: `history`
        (activation order), then releases never activated, oldest name first."""
        current = self.current_version()
        present = self.versions()
        ordered = [v for v in _dedupe_last(history) if v in present]
        ordered = [v for v in present if v not in ordered] + ordered
        removed = []
        for version in ordered[: max(0, len(ordered) - keep)]:
            if version == current:
                continue
            # Rename first: a reader sees the release whole or not at all.
            doomed = self.staging / f"pruned-{version}"
            os.rename(self.release_path(version), doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(version)
        return removed


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `path` through a temporary file in the same folder and one rename: a reader sees
    the old content or the new, never a part (the status record, dagpublish's pointer)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _dedupe_last(items: list[str]) -> list[str]:
    """Keep each item's last occurrence, in order."""
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        seen[item] = index
    return [item for item, _ in sorted(seen.items(), key=lambda pair: pair[1])]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
