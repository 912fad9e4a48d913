"""The Airflow DAG bundle that serves releases written by dag-sync (a versioned bundle).

Configured by the entrypoint when AIRFLOW_STACK_DAG_RELEASES_DIR is set (dags.parsing).

- The dag-processor (no version asked): every refresh (AIRFLOW_STACK_DAG_REFRESH_INTERVAL,
  2 s by default; one readlink) reads which release `current` points at and keeps that
  release's folder as the bundle path until the next refresh, so a parse never mixes two
  releases. A new release is a new bundle version: Airflow rescans and re-parses at once.
- A worker (the DAG run's version asked): the path is releases/<version>, so a task runs the
  code its run was created with, even when `current` moved on while it waited or ran. A
  version pruned from disk (AIRFLOW_STACK_DAG_KEEP_RELEASES) fails the task with that reason.
"""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.bundles.base import BaseDagBundle, BundleVersion

from airflow_stack.dags.releases import Store


class ReleaseDagBundle(BaseDagBundle):
    supports_versioning = True

    def __init__(self, *, releases_dir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store = Store(releases_dir)
        self._seen: str | None = None
        self._refreshed = False

    def initialize(self) -> None:
        if self.version and not self.store.has(self.version):
            raise RuntimeError(
                f"DAG release {self.version!r} is no longer in {self.store.releases} (kept: the newest "
                f"AIRFLOW_STACK_DAG_KEEP_RELEASES); re-run the task to use the current release"
            )
        self.refresh()
        super().initialize()

    def refresh(self) -> None:
        if not self.version:
            self._seen = self.store.current_version()
            self._refreshed = True

    def _release(self) -> str | None:
        if self.version:
            return self.version
        if not self._refreshed:
            self.refresh()
        return self._seen

    @property
    def path(self) -> Path:
        release = self._release()
        return self.store.release_path(release) if release else self.store.current

    def get_current_version(self) -> BundleVersion | None:
        release = self._release()
        return BundleVersion(version=release) if release else None
