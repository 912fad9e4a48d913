"""The `dag-sync` component: pull versioned DAG artifacts and switch them in atomically.

    airflow-stack run dag-sync         poll the source every AIRFLOW_STACK_DAG_SYNC_INTERVAL s
    airflow-stack dag-sync --once      one poll; exit 1 if it failed
    airflow-stack dag-sync status      print the status record (JSON)
    airflow-stack dag-sync rollback [VERSION]
                                       activate VERSION (default: the one before) and pin it
    airflow-stack dag-sync resume      unpin: follow the source again from the next poll

One poll: a conditional request to the source (dagsource); when it offers a version that is
not current, download it (size-capped), verify its SHA-256 when offered, extract it safely
(archive), import its DAGs in a child process (dagvalidate), move it into the release store
and point `current` at it (releases). Any failure leaves the live release untouched, is logged
and recorded in status.json, and the next poll tries again. One log line per decision.
Every setting is in the registry (core.settings, group "DAG deployment").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, log
from airflow_stack.dags import archive, dagsource, dagvalidate
from airflow_stack.dags.releases import DEFAULT_RELEASES_DIR, RELEASES_DIR_SETTING, Status, Store, now_iso, store_of

MB = 1024 * 1024
MAX_ERROR_CHARS = 2000  # of an error kept in status.json or logged (a crafted name can be long)


def truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class ChecksumMismatch(Exception):
    pass


@dataclass(frozen=True)
class DagSyncSettings:
    """dag-sync's settings, read from the registry (each refused by name when bad)."""

    source: str
    releases_dir: Path
    sync_interval: float
    keep_releases: int
    validate_dags: bool
    validate_timeout: float
    validate_uid: int
    validate_memory_mb: float
    require_checksum: bool
    max_archive_mb: float
    max_extracted_mb: float
    max_files: int
    source_timeout: float
    source_token: str | None
    source_username: str | None
    source_password: str | None
    source_ca_bundle: Path | None
    source_allowed_origins: tuple[str, ...]
    poll_timeout: float
    s3_endpoint_url: str | None


def load_settings(env: Mapping[str, str]) -> DagSyncSettings:
    """The settings from `env` (their `*_FILE` twins resolved already); a StackError naming a bad one."""
    values = settings.read_all(env, _FIELDS)
    if not values["source"]:
        raise StackError(
            f"{settings.DAG_SOURCE.name} is not set: dag-sync has nowhere to pull DAG releases from",
            setting=settings.DAG_SOURCE.name,
            fix="point it at an artifact (…/dags.tar.gz) or a version pointer (…/LATEST); "
            f"see {settings.DAG_SOURCE.anchor}",
        )
    return DagSyncSettings(**values | {"releases_dir": values["releases_dir"] or DEFAULT_RELEASES_DIR})


_FIELDS = {
    "source": settings.DAG_SOURCE,
    "releases_dir": settings.DAG_RELEASES_DIR,
    "sync_interval": settings.DAG_SYNC_INTERVAL,
    "keep_releases": settings.DAG_KEEP_RELEASES,
    "validate_dags": settings.DAG_VALIDATE,
    "validate_timeout": settings.DAG_VALIDATE_TIMEOUT,
    "validate_uid": settings.DAG_VALIDATE_UID,
    "validate_memory_mb": settings.DAG_VALIDATE_MEMORY_MB,
    "require_checksum": settings.DAG_REQUIRE_CHECKSUM,
    "max_archive_mb": settings.DAG_MAX_ARCHIVE_MB,
    "max_extracted_mb": settings.DAG_MAX_EXTRACTED_MB,
    "max_files": settings.DAG_MAX_FILES,
    "source_timeout": settings.DAG_SOURCE_TIMEOUT,
    "source_token": settings.DAG_SOURCE_TOKEN,
    "source_username": settings.DAG_SOURCE_USERNAME,
    "source_password": settings.DAG_SOURCE_PASSWORD,
    "source_ca_bundle": settings.DAG_SOURCE_CA_BUNDLE,
    "source_allowed_origins": settings.DAG_SOURCE_ALLOWED_ORIGINS,
    "poll_timeout": settings.DAG_POLL_TIMEOUT,
    "s3_endpoint_url": settings.S3_ENDPOINT_URL,
}


def make_source(cfg: DagSyncSettings) -> dagsource.Source:
    location = cfg.source
    max_bytes = int(cfg.max_archive_mb * MB)
    # The registry admits http://, https:// and s3:// URLs only.
    if location.startswith("s3://"):
        if not location[5:].partition("/")[2]:
            raise StackError(
                f"{settings.DAG_SOURCE.name}={location!r} names a bucket but no key",
                setting=settings.DAG_SOURCE.name,
                fix="write it as s3://BUCKET/path/LATEST or .../dags.tar.gz",
            )
        return dagsource.S3Source(
            location, endpoint_url=cfg.s3_endpoint_url, timeout=cfg.source_timeout, max_bytes=max_bytes
        )
    return dagsource.HttpSource(
        location,
        token=cfg.source_token,
        username=cfg.source_username,
        password=cfg.source_password,
        timeout=cfg.source_timeout,
        max_bytes=max_bytes,
        ca_bundle=str(cfg.source_ca_bundle) if cfg.source_ca_bundle else None,
        allowed_origins=cfg.source_allowed_origins,
    )


class DagSync:
    """One release store fed by one source."""

    def __init__(self, cfg: DagSyncSettings, source: dagsource.Source, validator: Callable[[Path], list[str]] | None):
        self.cfg = cfg
        self.store = Store(cfg.releases_dir)
        self.source = source
        self.validator = validator
        self.limits = archive.Limits(max_files=cfg.max_files, max_bytes=int(cfg.max_extracted_mb * MB))

    def poll(self) -> tuple[bool, str]:
        """One poll: (succeeded, the decision in one line). Any error is recorded and logged,
        never raised: bad input must not stop the service. The store's lock is held only for
        the switch and the status record, never for a download, so rollback and status never
        wait behind one."""
        checked_at = now_iso()
        self.source.deadline = time.monotonic() + self.cfg.poll_timeout
        try:
            # Downloads and extractions go to local scratch, readable by the validation sandbox;
            # the store (which the sandbox cannot reach) gets a copy of a validated release only.
            with tempfile.TemporaryDirectory(prefix="dag-sync-") as scratch:
                os.chmod(scratch, 0o755)
                finish = self._fetch(Path(scratch))
                with self.store.lock():
                    status = self._status(checked_at)
                    decision = finish(status)
                    status.last_success = checked_at
                    self.store.write_status(status)
            ok = True
        except Exception as exc:  # noqa: BLE001 - every failure class is recorded, none ends the service
            error = truncate(f"{type(exc).__name__}: {exc}")
            decision = f"kept {self.store.current_version() or '(no release yet)'}; rejected: {error}"
            ok = False
            try:
                with self.store.lock():
                    status = self._status(checked_at)
                    status.last_error, status.last_error_at = error, checked_at
                    self.store.write_status(status)
            except OSError as write_error:  # the volume is full or gone: logged; the next poll tries again
                decision += f" (the status record could not be written: {write_error.strerror})"
        log(f"dag-sync: {truncate(decision)}")
        return ok, decision

    def _status(self, checked_at: str) -> Status:
        try:
            status = self.store.read_status()
        except StackError as exc:  # a corrupt record is replaced, not fatal
            log(f"dag-sync: {exc.problem}; starting a new status record")
            status = Status(current_version=self.store.current_version())
        status.source = self.source.location
        status.last_check = checked_at
        return status

    def _fetch(self, scratch: Path) -> Callable[[Status], str]:
        """Without the lock: ask the source, download, verify, extract and validate into
        `scratch`. Returns the step that runs under the lock and says what happened."""
        state = self._status(now_iso())
        current = self.store.current_version()
        offer = self.source.check(state.source_state, scratch)
        if offer is None:
            return lambda status: f"unchanged: {self.source.location} not modified; current {current}"
        if state.pinned:
            return lambda status: (
                f"pinned at {current} by rollback; the source offers {offer.version}; "
                "`airflow-stack dag-sync resume` follows it again"
            )
        if offer.version == current:

            def keep(status: Status) -> str:
                status.source_state = offer.state
                return f"unchanged: the source offers {current}, already current"

            return keep
        if self.store.has(offer.version):
            return lambda status: self._activate(
                status, offer, None, f"activated {offer.version} (already on disk, not downloaded again)"
            )
        self.source.download(offer, scratch)  # artifact mode: check() downloaded it already
        verified = self._verify(offer)
        release = scratch / "release"
        files = archive.extract(offer.archive, offer.fmt, release, self.limits)
        dags = self.validator(release) if self.validator else None
        checked = f"{len(dags)} DAG(s) imported" if dags is not None else "validation off"
        decision = (
            f"activated {offer.version} (was {current or 'no release'}): {files} file(s), {checked}, "
            f"checksum {verified}"
        )
        return lambda status: self._activate(status, offer, release, decision)

    def _activate(self, status: Status, offer: dagsource.Offer, release: Path | None, decision: str) -> str:
        """Under the lock: switch to the offer's release, unless a rollback pinned the store meanwhile."""
        if status.pinned:
            current = self.store.current_version()
            return f"pinned at {current} by a rollback during this poll; {offer.version} not activated"
        if release is not None and not self.store.has(offer.version):
            with self.store.staged("copy") as staging:
                shutil.copytree(release, staging / "release", symlinks=True)
                self.store.add(staging / "release", offer.version)
        switch(self.store, status, offer.version)
        status.source_state = offer.state
        pruned = self.store.prune(self.cfg.keep_releases, status.history)
        return decision + (f"; pruned {', '.join(pruned)}" if pruned else "")

    def _verify(self, offer: dagsource.Offer) -> str:
        expected = offer.sha256 or self.source.sidecar_sha256(offer)
        if expected is None:
            if self.cfg.require_checksum:
                raise ChecksumMismatch(
                    f"{offer.artifact} comes with no SHA-256 (pointer line, X-Checksum-Sha256, S3 metadata "
                    "`sha256` or a .sha256 sidecar) and AIRFLOW_STACK_DAG_REQUIRE_CHECKSUM is true"
                )
            return "not offered by the source"
        if offer.digest != expected.lower():
            raise ChecksumMismatch(f"{offer.artifact} has SHA-256 {offer.digest}, but the source says {expected}")
        return "verified"

    def serve(self, stop: threading.Event | None = None) -> None:
        """Poll every sync_interval seconds until `stop` is set (never, in the service)."""
        log(
            f"dag-sync: polling {self.source.location} every {self.cfg.sync_interval:g} s into {self.store.root} "
            f"(validation {'on' if self.validator else 'off'}, keeping {self.cfg.keep_releases} releases)"
        )
        while stop is None or not stop.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - poll records its errors; this is the last guard
                log(f"dag-sync: poll failed unexpectedly: {truncate(f'{type(exc).__name__}: {exc}')}")
            time.sleep(max(0.0, self.cfg.sync_interval - (time.monotonic() - started)))


def switch(store: Store, status: Status, version: str) -> None:
    store.activate(version)
    status.history = [*status.history, version][-100:]
    status.last_activation = now_iso()


def rollback(store: Store, version: str | None) -> str:
    """Activate `version` (default: the release active before the current one) and pin it."""
    with store.lock():
        status = store.read_status()
        current = store.current_version()
        if version is None:
            earlier = [v for v in reversed(status.history) if v != current and store.has(v)]
            if not earlier:
                raise StackError(
                    "there is no earlier release to roll back to",
                    setting=RELEASES_DIR_SETTING,
                    fix=f"name one: {', '.join(store.versions()) or '(none on disk)'}",
                )
            version = earlier[0]
        switch(store, status, version)
        status.pinned = True
        store.write_status(status)
    return f"rolled back from {current} to {version}; pinned until `airflow-stack dag-sync resume`"


def resume(store: Store) -> str:
    """Unpin, and forget the source's conditional state so the next poll asks afresh."""
    with store.lock():
        status = store.read_status()
        status.pinned = False
        status.source_state = {}
        store.write_status(status)
    return "unpinned: the next poll activates whatever the source offers"


def build(env: Mapping[str, str], *, validate: bool = True) -> DagSync:
    cfg = load_settings(env)
    validator = None
    if cfg.validate_dags and validate:
        sandbox = dagvalidate.Validator(cfg.validate_uid, cfg.validate_timeout, cfg.validate_memory_mb, env)
        validator = sandbox.validate
    return DagSync(cfg, make_source(cfg), validator)


def status_of(store: Store) -> dict:
    record = store.read_status().__dict__ | {"current_version": store.current_version(), "releases": store.versions()}
    record.pop("source_state", None)
    return record


def serve(env: Mapping[str, str], once: bool = False) -> int:
    """Poll every AIRFLOW_STACK_DAG_SYNC_INTERVAL seconds (once: one poll, 1 if it failed)."""
    # SIGTERM ends the service between or during polls; staging is cleaned by `finally`
    # blocks and again at the next start, and the switch itself is one rename.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sync = build(env)
    with sync.store.lock():
        sync.store.prepare()
    if once:
        ok, _ = sync.poll()
        return 0 if ok else 1
    sync.serve()
    return 0


def print_status(env: Mapping[str, str]) -> int:
    print(json.dumps(status_of(store_of(env)), indent=2, sort_keys=True))
    return 0
