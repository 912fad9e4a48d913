"""dag-sync against real servers on 127.0.0.1: an HTTP artifact repository (pytest-httpserver,
with ETags), raw sockets for broken transfers, and moto's S3 server.

Every fault leaves the live release byte-identical and is recorded in status.json; a good
artifact is switched in; an unchanged source downloads nothing; rollback pins, resume unpins.
Import-error validation needs Airflow and is tested end to end (tests/e2e/test_dag_sync.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import tarfile
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.dags import dagsync
from airflow_stack.host import dagpublish

from .test_archive import entry, make_tar


class Repo:
    """An artifact repository served over HTTP: files by name, ETag = content hash."""

    def __init__(self, httpserver, token: str | None = None, basic: tuple[str, str] | None = None):
        self.files: dict[str, bytes] = {}
        self.hits: list[tuple[str, int]] = []
        self.token = token
        self.basic = basic
        self.checksum_header = False  # answer X-Checksum-Sha256, as Artifactory does
        self.header_checksums: dict[str, str] = {}  # override the header's value per file
        self.etags = True  # False: Last-Modified only
        self.modified: dict[str, str] = {}
        self.delay = 0.0
        self.url = httpserver.url_for("/dags/")
        httpserver.expect_request(re_any()).respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        name = request.path.removeprefix("/dags/")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._hit(name, Response("no", status=401))
        if self.basic and (
            request.authorization is None
            or (request.authorization.username, request.authorization.password) != self.basic
        ):
            return self._hit(name, Response("no", status=401))
        if self.delay:
            time.sleep(self.delay)
        if name not in self.files:
            return self._hit(name, Response("not found", status=404))
        body = self.files[name]
        if not self.etags:
            modified = self.modified[name]
            if request.headers.get("If-Modified-Since") == modified:
                return self._hit(name, Response(status=304))
            return self._hit(name, Response(body, headers={"Last-Modified": modified}))
        etag = f'"{hashlib.sha1(body).hexdigest()}"'
        if request.headers.get("If-None-Match") == etag:
            return self._hit(name, Response(status=304))
        headers = {"ETag": etag}
        if self.checksum_header:
            headers["X-Checksum-Sha256"] = self.header_checksums.get(name, hashlib.sha256(body).hexdigest())
        return self._hit(name, Response(body, headers=headers))

    def _hit(self, name: str, response: Response) -> Response:
        self.hits.append((name, response.status_code))
        return response

    def publish(self, folder: Path, version: str, scratch: Path) -> None:
        artifact = dagpublish.publish(folder, version, scratch)
        for path in (artifact, scratch / f"{artifact.name}.sha256", scratch / "LATEST"):
            self.files[path.name] = path.read_bytes()


def re_any() -> re.Pattern:
    return re.compile(r"/dags/.*")


def dag_folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / f"src-{name}"
    folder.mkdir()
    (folder / "dag.py").write_text(text)
    return folder


def snapshot(root: Path) -> dict[str, str]:
    """Every path under the live release with its content hash or link target."""
    live = root / "current"
    found = {"current ->": os.readlink(live) if live.is_symlink() else "(none)"}
    if live.exists():
        for path in sorted(live.rglob("*")):
            rel = str(path.relative_to(live))
            found[rel] = (
                os.readlink(path)
                if path.is_symlink()
                else (hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir")
            )
    return found


def make_sync(tmp_path: Path, source: str, **overrides: str) -> dagsync.DagSync:
    env = {
        "AIRFLOW_STACK_DAG_SOURCE": source,
        "AIRFLOW_STACK_DAG_RELEASES_DIR": str(tmp_path / "store"),
        "AIRFLOW_STACK_DAG_SOURCE_TIMEOUT": "2",
        **overrides,
    }
    settings.resolve_file_twins(env)
    cfg = dagsync.load_settings(env)
    sync = dagsync.DagSync(cfg, dagsync.make_source(cfg), validator=None)
    with sync.store.lock():
        sync.store.prepare()
    return sync


@pytest.fixture
def repo(httpserver) -> Repo:
    return Repo(httpserver)


@pytest.fixture
def live(tmp_path: Path, repo: Repo) -> dagsync.DagSync:
    """A store with v1 live, fed by the pointer of `repo`."""
    sync = make_sync(tmp_path, repo.url + "LATEST")
    repo.publish(dag_folder(tmp_path, "v1", "VERSION = 1\n"), "1.0.0", tmp_path / "published")
    ok, decision = sync.poll()
    assert ok and "activated dags-1.0.0" in decision, decision
    return sync


def test_a_published_version_is_switched_in_and_recorded(live: dagsync.DagSync):
    assert live.store.current_version() == "dags-1.0.0"
    assert (live.store.current / "dag.py").read_text() == "VERSION = 1\n"
    status = json.loads(live.store.status_file.read_text())
    assert status["current_version"] == "dags-1.0.0" and status["last_success"] and status["last_error"] is None


def test_an_unchanged_source_downloads_nothing(live: dagsync.DagSync, repo: Repo):
    repo.hits.clear()
    ok, decision = live.poll()
    assert ok and "not modified" in decision
    assert repo.hits == [("LATEST", 304)]


def test_a_new_version_replaces_the_old_and_old_releases_are_pruned(tmp_path, repo: Repo):
    sync = make_sync(tmp_path, repo.url + "LATEST", AIRFLOW_STACK_DAG_KEEP_RELEASES="2")
    for n in (1, 2, 3):
        repo.publish(dag_folder(tmp_path, f"v{n}", f"VERSION = {n}\n"), f"{n}.0.0", tmp_path / "published")
        ok, decision = sync.poll()
        assert ok, decision
    assert (sync.store.current / "dag.py").read_text() == "VERSION = 3\n"
    assert sync.store.versions() == ["dags-2.0.0", "dags-3.0.0"]


def test_bearer_token_is_sent(tmp_path, httpserver):
    repo = Repo(httpserver, token="s3cr3t-token")
    repo.publish(dag_folder(tmp_path, "v1", "x = 1\n"), "1", tmp_path / "published")
    ok, decision = make_sync(tmp_path / "a", repo.url + "LATEST").poll()
    assert not ok and "answered 401" in decision and "token" in decision
    sync = make_sync(tmp_path / "b", repo.url + "LATEST", AIRFLOW_STACK_DAG_SOURCE_TOKEN="s3cr3t-token")
    ok, decision = sync.poll()
    assert ok and "activated dags-1" in decision, decision


def test_basic_auth_is_sent(tmp_path, httpserver):
    repo = Repo(httpserver, basic=("robot", "pa55-word"))
    repo.publish(dag_folder(tmp_path, "v1", "x = 1\n"), "1", tmp_path / "published")
    password_file = tmp_path / "password"
    password_file.write_text("pa55-word\n")
    sync = make_sync(
        tmp_path / "s",
        repo.url + "LATEST",
        AIRFLOW_STACK_DAG_SOURCE_USERNAME="robot",
        AIRFLOW_STACK_DAG_SOURCE_PASSWORD_FILE=str(password_file),
    )
    ok, decision = sync.poll()
    assert ok and "activated dags-1" in decision, decision


def assert_rejected(sync: dagsync.DagSync, expected: str) -> None:
    before = snapshot(sync.store.root)
    ok, decision = sync.poll()
    assert not ok, decision
    assert expected in decision, decision
    assert snapshot(sync.store.root) == before
    status = json.loads(sync.store.status_file.read_text())
    assert expected in status["last_error"] and status["current_version"] == "dags-1.0.0"
    assert list(sync.store.staging.iterdir()) == []


def test_404_leaves_the_live_release_untouched(live, repo: Repo):
    repo.files["LATEST"] = b"dags-9.9.9.tar.gz\n"
    assert_rejected(live, "answered 404 NOT FOUND")


def test_500_leaves_the_live_release_untouched(live, httpserver):
    httpserver.clear_all_handlers()
    httpserver.expect_request(re_any()).respond_with_data("boom", status=500)
    assert_rejected(live, "answered 500")


def test_connection_refused_leaves_the_live_release_untouched(live, unused_port):
    live.source = dagsync.make_source(dataclasses.replace(live.cfg, source=f"http://127.0.0.1:{unused_port}/LATEST"))
    assert_rejected(live, "cannot connect to")


def test_a_timeout_leaves_the_live_release_untouched(live, repo: Repo):
    repo.files["LATEST"] = b"dags-2.0.0.tar.gz\n"
    repo.delay = 3  # the source timeout is 2 s
    assert_rejected(live, "timed out")


def raw_server(response: bytes) -> str:
    """A one-shot server on 127.0.0.1 that answers any request with `response` and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)

    def serve():
        for _ in range(5):
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(response)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_truncated_download_leaves_the_live_release_untouched(live, tmp_path):
    url = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/gzip\r\n\r\n" + b"\x1f\x8b" * 50
    )
    live.source = dagsync.make_source(dataclasses.replace(live.cfg, source=f"{url}/dags-latest.tar.gz"))
    assert_rejected(live, "truncated download")


def test_a_checksum_mismatch_leaves_the_live_release_untouched(live, repo: Repo, tmp_path):
    repo.publish(dag_folder(tmp_path, "v2", "VERSION = 2\n"), "2.0.0", tmp_path / "published")
    repo.files["LATEST"] = ("0" * 64 + "  dags-2.0.0.tar.gz\n").encode()
    assert_rejected(live, "has SHA-256")


def test_a_checksum_from_the_sidecar_is_checked(live, repo: Repo, tmp_path):
    repo.publish(dag_folder(tmp_path, "v2", "VERSION = 2\n"), "2.0.0", tmp_path / "published")
    repo.files["LATEST"] = b"dags-2.0.0.tar.gz\n"  # no hash in the pointer
    repo.files["dags-2.0.0.tar.gz.sha256"] = ("f" * 64 + "  dags-2.0.0.tar.gz\n").encode()
    assert_rejected(live, "the source says ffff")


def test_the_artifactory_checksum_header_is_checked(live, repo: Repo, tmp_path):
    repo.publish(dag_folder(tmp_path, "v2", "VERSION = 2\n"), "2.0.0", tmp_path / "published")
    repo.files["LATEST"] = b"dags-2.0.0.tar.gz\n"
    del repo.files["dags-2.0.0.tar.gz.sha256"]
    repo.checksum_header = True
    repo.header_checksums["dags-2.0.0.tar.gz"] = "e" * 64
    assert_rejected(live, "the source says eeee")
    del repo.header_checksums["dags-2.0.0.tar.gz"]
    ok, decision = live.poll()
    assert ok and "activated dags-2.0.0" in decision and "checksum verified" in decision, decision


def test_last_modified_is_used_when_the_server_sends_no_etag(tmp_path, repo: Repo):
    repo.etags = False
    repo.publish(dag_folder(tmp_path, "v1", "x = 1\n"), "1", tmp_path / "published")
    repo.modified = dict.fromkeys(repo.files, "Wed, 25 Nov 2026 00:00:00 GMT")
    sync = make_sync(tmp_path, repo.url + "LATEST")
    assert sync.poll()[0]
    repo.hits.clear()
    ok, decision = sync.poll()
    assert ok and "not modified" in decision and repo.hits == [("LATEST", 304)]


def test_a_missing_checksum_is_refused_when_required(tmp_path, repo: Repo):
    sync = make_sync(tmp_path, repo.url + "LATEST", AIRFLOW_STACK_DAG_REQUIRE_CHECKSUM="true")
    repo.publish(dag_folder(tmp_path, "v1", "x = 1\n"), "1.0.0", tmp_path / "published")
    repo.files["LATEST"] = b"dags-1.0.0.tar.gz\n"
    del repo.files["dags-1.0.0.tar.gz.sha256"]
    ok, decision = sync.poll()
    assert not ok and "AIRFLOW_STACK_DAG_REQUIRE_CHECKSUM is true" in decision
    assert sync.store.current_version() is None


def publish_archive(repo: Repo, path: Path, name: str) -> None:
    repo.files[name] = path.read_bytes()
    repo.files["LATEST"] = f"{name}\n".encode()


def test_path_traversal_leaves_the_live_release_untouched(live, repo: Repo, tmp_path):
    bad = make_tar(tmp_path / "t.tar.gz", [(entry("dag.py"), b"x"), (entry("../../escape.py"), b"owned")])
    publish_archive(repo, bad, "dags-2.0.0.tar.gz")
    assert_rejected(live, "path traversal")
    assert not list(tmp_path.rglob("escape.py"))


def test_a_link_escaping_the_folder_leaves_the_live_release_untouched(live, repo: Repo, tmp_path):
    bad = make_tar(tmp_path / "t.tar.gz", [(entry("dag.py"), b"x"), (entry("etc", tarfile.SYMTYPE, link="/etc"), None)])
    publish_archive(repo, bad, "dags-2.0.0.tar.gz")
    assert_rejected(live, "outside the release")


def test_an_archive_over_the_size_limit_leaves_the_live_release_untouched(live, repo: Repo, tmp_path):
    live.limits = type(live.limits)(max_files=100, max_bytes=10_000)
    big = make_tar(tmp_path / "t.tar.gz", [(entry("dag.py"), b"#" * 50_000)])
    publish_archive(repo, big, "dags-2.0.0.tar.gz")
    assert_rejected(live, "over the limit of 10000")


def test_a_download_over_the_size_limit_stops_early(live, repo: Repo, tmp_path):
    live.source.max_bytes = 1000
    noise = make_tar(tmp_path / "t.tar.gz", [(entry("dag.py"), os.urandom(20_000))])
    publish_archive(repo, noise, "dags-2.0.0.tar.gz")
    assert_rejected(live, "over the limit of 1000")


def test_an_empty_archive_leaves_the_live_release_untouched(live, repo: Repo, tmp_path):
    empty = make_tar(tmp_path / "t.tar.gz", [])
    publish_archive(repo, empty, "dags-2.0.0.tar.gz")
    assert_rejected(live, "empty")


def test_a_pointer_naming_an_unsafe_version_is_refused(live, repo: Repo):
    repo.files["LATEST"] = b"..hidden.tar.gz\n"
    assert_rejected(live, "not a safe folder name")
    repo.files["LATEST"] = b"just some text here\n"
    assert_rejected(live, "does not name an artifact")


def test_a_direct_artifact_url_is_versioned_by_content(tmp_path, repo: Repo):
    sync = make_sync(tmp_path, repo.url + "dags-latest.tar.gz")
    dagpublish.build_archive(dag_folder(tmp_path, "v1", "x = 1\n"), tmp_path / "a.tar.gz")
    repo.files["dags-latest.tar.gz"] = (tmp_path / "a.tar.gz").read_bytes()
    ok, decision = sync.poll()
    digest = hashlib.sha256(repo.files["dags-latest.tar.gz"]).hexdigest()
    assert ok and sync.store.current_version() == f"dags-latest-{digest[:12]}", decision
    repo.hits.clear()
    assert sync.poll()[0] and repo.hits == [("dags-latest.tar.gz", 304)]


def test_rollback_pins_and_resume_follows_the_source_again(tmp_path, repo: Repo):
    sync = make_sync(tmp_path, repo.url + "LATEST")
    for n in (1, 2):
        repo.publish(dag_folder(tmp_path, f"v{n}", f"VERSION = {n}\n"), f"{n}.0.0", tmp_path / "published")
        assert sync.poll()[0]
    message = dagsync.rollback(sync.store, None)
    assert "from dags-2.0.0 to dags-1.0.0" in message
    assert (sync.store.current / "dag.py").read_text() == "VERSION = 1\n"
    ok, decision = sync.poll()
    assert ok and sync.store.current_version() == "dags-1.0.0"
    repo.publish(dag_folder(tmp_path, "v3", "VERSION = 3\n"), "3.0.0", tmp_path / "published")
    ok, decision = sync.poll()
    assert "pinned at dags-1.0.0" in decision and sync.store.current_version() == "dags-1.0.0"
    dagsync.resume(sync.store)
    ok, decision = sync.poll()
    assert ok and sync.store.current_version() == "dags-3.0.0", decision
    with pytest.raises(StackError, match="not in"):
        dagsync.rollback(sync.store, "dags-0.0.1")


def test_invalid_settings_are_refused_naming_each_variable(tmp_path):
    with pytest.raises(StackError) as error:
        dagsync.load_settings({"AIRFLOW_STACK_DAG_SYNC_INTERVAL": "soon", "AIRFLOW_STACK_DAG_KEEP_RELEASES": "1"})
    text = error.value.render()
    for name in ("AIRFLOW_STACK_DAG_SYNC_INTERVAL='soon'", "AIRFLOW_STACK_DAG_KEEP_RELEASES='1' is below 2"):
        assert name in text, text
    with pytest.raises(
        StackError, match="AIRFLOW_STACK_DAG_SOURCE='ftp://x/LATEST' is not a http:// or https:// or s3://"
    ):
        dagsync.load_settings({"AIRFLOW_STACK_DAG_SOURCE": "ftp://x/LATEST"})


# -- S3 (moto's server) -------------------------------------------------------------------
@pytest.fixture
def s3(moto_endpoint, aws_test_credentials):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"dags-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_pointer_conditional_requests_checksum_and_faults(tmp_path, s3, moto_endpoint):
    client, bucket = s3
    sync = make_sync(tmp_path, f"s3://{bucket}/prod/LATEST", AIRFLOW_STACK_S3_ENDPOINT_URL=moto_endpoint)
    ok, decision = sync.poll()
    assert not ok and f"s3://{bucket}/prod/LATEST does not exist" in decision

    artifact = dagpublish.publish(dag_folder(tmp_path, "v1", "VERSION = 1\n"), "1.0.0", tmp_path / "pub")
    client.put_object(
        Bucket=bucket,
        Key=f"prod/{artifact.name}",
        Body=artifact.read_bytes(),
        Metadata={"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()},
    )
    client.put_object(Bucket=bucket, Key="prod/LATEST", Body=f"{artifact.name}\n".encode())
    ok, decision = sync.poll()
    assert ok and "activated dags-1.0.0" in decision and "checksum verified" in decision, decision
    ok, decision = sync.poll()
    assert ok and "not modified" in decision, decision

    bad = make_tar(tmp_path / "bad.tar.gz", [(entry("dag.py"), b"x")])
    client.put_object(Bucket=bucket, Key="prod/dags-2.0.0.tar.gz", Body=bad.read_bytes(), Metadata={"sha256": "0" * 64})
    client.put_object(Bucket=bucket, Key="prod/LATEST", Body=b"dags-2.0.0.tar.gz\n")
    assert_rejected(sync, "has SHA-256")
