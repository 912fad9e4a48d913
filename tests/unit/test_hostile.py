"""Crafted input against dag-sync and bootstrap: credentials only to the source's origin, every
read bounded as it streams, a poll deadline, no lock held during a download, serve mode that
survives every failure class, and YAML that cannot be bombed."""

from __future__ import annotations

import io
import socket
import stat
import tarfile
import threading
import time
import zipfile

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airflow_stack.core.errors import StackError
from airflow_stack.dags import archive, dagsource, dagsync
from airflow_stack.dags.archive import Limits, UnsafeArchive, extract
from airflow_stack.dags.releases import Store
from airflow_stack.host import dagpublish
from airflow_stack.jobs import bootstrap

from .test_archive import entry, make_tar
from .test_dagsync import make_sync

LIMITS = Limits(max_files=50, max_bytes=1_000_000)


# -- credentials go to the source's origin only ---------------------------------------------------
@pytest.fixture
def elsewhere():
    """A second HTTP server: another origin (another port), recording what it is sent."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.headers))
        return Response(published_artifact(), headers={"ETag": '"x"'})

    server.expect_request("/dags-9.tar.gz").respond_with_handler(handler)
    server.expect_request("/dags-9.tar.gz.sha256").respond_with_data("", status=404)
    server.seen = seen
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def published_artifact() -> bytes:
    return make_tar_bytes({"dag.py": b"x = 1\n"})


def make_tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_pointer_naming_another_origin_is_refused_and_nothing_is_sent_there(tmp_path, httpserver, elsewhere):
    httpserver.expect_request("/dags/LATEST").respond_with_data(elsewhere.url_for("/dags-9.tar.gz") + "\n")
    sync = make_sync(tmp_path, httpserver.url_for("/dags/LATEST"), AIRFLOW_STACK_DAG_SOURCE_TOKEN="s3cr3t")
    ok, decision = sync.poll()
    assert not ok and "on another origin than AIRFLOW_STACK_DAG_SOURCE" in decision, decision
    assert "AIRFLOW_STACK_DAG_SOURCE_ALLOWED_ORIGINS" in decision
    assert elsewhere.seen == []


def test_a_redirect_to_another_origin_is_refused_unless_allowed_and_never_gets_the_token(
    tmp_path, httpserver, elsewhere
):
    target = elsewhere.url_for("/dags-9.tar.gz")
    redirect = Response(status=302, headers={"Location": target})
    httpserver.expect_request("/dags/dags.tar.gz").respond_with_response(redirect)
    sync = make_sync(tmp_path, httpserver.url_for("/dags/dags.tar.gz"), AIRFLOW_STACK_DAG_SOURCE_TOKEN="s3cr3t")
    ok, decision = sync.poll()
    assert not ok and "redirects to" in decision and elsewhere.seen == []

    allowed = make_sync(
        tmp_path / "b",
        httpserver.url_for("/dags/dags.tar.gz"),
        AIRFLOW_STACK_DAG_SOURCE_TOKEN="s3cr3t",
        AIRFLOW_STACK_DAG_SOURCE_USERNAME="robot",
        AIRFLOW_STACK_DAG_SOURCE_ALLOWED_ORIGINS=elsewhere.url_for("/"),
    )
    ok, decision = allowed.poll()
    assert ok, decision
    assert elsewhere.seen and all("Authorization" not in headers for headers in elsewhere.seen)


def test_a_redirect_within_the_origin_keeps_the_credentials(tmp_path, httpserver):
    seen = []

    def artifact(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        return Response(published_artifact())

    httpserver.expect_request("/dags/latest.tar.gz").respond_with_response(
        Response(status=307, headers={"Location": "/store/dags-2.tar.gz"})
    )
    httpserver.expect_request("/store/dags-2.tar.gz").respond_with_handler(artifact)
    httpserver.expect_request("/store/dags-2.tar.gz.sha256").respond_with_data("", status=404)
    sync = make_sync(tmp_path, httpserver.url_for("/dags/latest.tar.gz"), AIRFLOW_STACK_DAG_SOURCE_TOKEN="s3cr3t")
    ok, decision = sync.poll()
    assert ok, decision
    assert seen == ["Bearer s3cr3t"]


def test_a_redirect_to_an_unsafe_name_is_a_rejection_not_a_crash(tmp_path, httpserver):
    httpserver.expect_request("/dags/dags.tar.gz").respond_with_response(
        Response(status=302, headers={"Location": "/-.tar.gz"})
    )
    httpserver.expect_request("/-.tar.gz").respond_with_data(published_artifact())
    ok, decision = make_sync(tmp_path, httpserver.url_for("/dags/dags.tar.gz")).poll()
    assert not ok and "cannot name a release" in decision, decision


# -- bounded reads -------------------------------------------------------------------------------
def test_a_huge_pointer_sent_without_a_length_is_cut_at_its_limit(tmp_path, httpserver):
    def endless(request: Request) -> Response:
        return Response((b"x" * 65536 for _ in range(10_000)), direct_passthrough=True)  # 640 MiB if read whole

    httpserver.expect_request("/dags/LATEST").respond_with_handler(endless)
    started = time.monotonic()
    ok, decision = make_sync(tmp_path, httpserver.url_for("/dags/LATEST")).poll()
    assert not ok and "larger than the limit of 65536 bytes" in decision, decision
    assert time.monotonic() - started < 10


@pytest.fixture
def trickle_server():
    """Answers every request with headers, then one byte of body every 0.2 s, for a minute."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            for _ in range(300):
                if stop.is_set():
                    break
                try:
                    conn.sendall(b"x")
                except OSError:
                    break
                time.sleep(0.2)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def test_a_trickling_server_is_cut_at_the_poll_deadline_and_never_blocks_the_lock(tmp_path, trickle_server):
    sync = make_sync(tmp_path, f"{trickle_server}/dags.tar.gz", AIRFLOW_STACK_DAG_POLL_TIMEOUT="2")
    result: list = []
    poller = threading.Thread(target=lambda: result.append(sync.poll()))
    started = time.monotonic()
    poller.start()
    time.sleep(0.5)
    with Store(tmp_path / "store").lock():  # what rollback and status take: free during the download
        took_lock = time.monotonic() - started
    poller.join(30)
    assert took_lock < 1.5
    ok, decision = result[0]
    assert not ok and "poll's deadline" in decision, decision
    assert time.monotonic() - started < 10


def zip_with(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive_:
        for info, data in entries:
            archive_.writestr(info, data)
    return buffer.getvalue()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_a_zip_link_with_a_huge_target_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(zip_with([(zipfile.ZipInfo("dag.py"), b"x=1"), (symlink_info("link"), b"a" * 5_000_000)]))
    with pytest.raises(UnsafeArchive, match="target longer than 1024"):
        extract(path, "zip", tmp_path / "out", LIMITS)


def test_a_tar_long_name_header_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("d/" * 60_000 + "x.py")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsafeArchive, match="long-name header of"):
        extract(path, "tar", tmp_path / "out", LIMITS)


def test_entry_counts_stop_at_the_limit_as_the_archive_is_read(tmp_path):
    many = [(entry(f"f{i}.py"), b"") for i in range(200)]
    with pytest.raises(UnsafeArchive, match="more than 50 entries"):
        extract(make_tar(tmp_path / "a.tar.gz", many), "tar", tmp_path / "t", LIMITS)
    path = tmp_path / "a.zip"
    path.write_bytes(zip_with([(zipfile.ZipInfo(f"f{i}.py"), b"") for i in range(200)]))
    with pytest.raises(UnsafeArchive, match=r"more than 50 entries \(200\)"):
        extract(path, "zip", tmp_path / "z", LIMITS)


@pytest.mark.parametrize(
    ("name", "problem"), [("a" * 2000, "longer than 1024 characters"), ("d/" + "b" * 300, "longer than 255 bytes")]
)
def test_names_and_parts_have_length_limits(tmp_path, name, problem):
    archive_path = make_tar(tmp_path / "a.tar.gz", [(entry("ok.py"), b""), (entry(name), b"")])
    with pytest.raises(UnsafeArchive, match=problem) as refused:
        extract(archive_path, "tar", tmp_path / "out", LIMITS)
    assert len(str(refused.value)) < 400


def test_a_file_inside_a_folder_the_archive_makes_a_link_is_refused_clearly(tmp_path):
    archive_path = make_tar(
        tmp_path / "a.tar.gz",
        [
            (entry("real", tarfile.DIRTYPE), None),
            (entry("a", tarfile.SYMTYPE, link="real"), None),
            (entry("a/x.py"), b"1"),
        ],
    )
    with pytest.raises(UnsafeArchive) as refused:
        extract(archive_path, "tar", tmp_path / "out", LIMITS)
    assert str(refused.value) == "entry 'a/x.py' is inside 'a', which the archive also makes a symbolic link"


def test_an_error_kept_in_the_status_record_is_truncated(tmp_path, httpserver):
    httpserver.expect_request("/dags/LATEST").respond_with_data("dags-" + "1" * 60_000 + ".tar.gz\n")
    sync = make_sync(tmp_path, httpserver.url_for("/dags/LATEST"))
    ok, _ = sync.poll()
    status = sync.store.read_status()
    assert not ok and status.last_error and len(status.last_error) <= dagsync.MAX_ERROR_CHARS + 40


# -- serve mode survives every failure class ----------------------------------------------------
class FailingSource:
    """Raises a different kind of error at each poll."""

    location = "http://source.invalid/LATEST"
    deadline = None
    errors = [
        dagsource.SourceError("404"),
        archive.UnsafeArchive("traversal"),
        dagsync.ChecksumMismatch("mismatch"),
        ValueError("bad name"),
        OSError(28, "No space left on device"),
        RuntimeError("unexpected"),
        KeyError("surprise"),
        MemoryError("too big"),
    ]

    def __init__(self) -> None:
        self.calls = 0

    def check(self, state, scratch):
        error = self.errors[self.calls % len(self.errors)]
        self.calls += 1
        raise error


def test_serve_records_every_failure_class_and_keeps_polling(tmp_path):
    cfg = dagsync.load_settings(
        {
            "AIRFLOW_STACK_DAG_SOURCE": "http://source.invalid/LATEST",
            "AIRFLOW_STACK_DAG_RELEASES_DIR": str(tmp_path / "store"),
            "AIRFLOW_STACK_DAG_SYNC_INTERVAL": "0.01",
        }
    )
    source = FailingSource()
    sync = dagsync.DagSync(cfg, source, validator=None)
    sync.store.prepare()
    errors_seen: set[str] = set()
    records = []
    original = sync.store.write_status

    def record(status):
        records.append(status.last_error)
        original(status)

    sync.store.write_status = record
    stop = threading.Event()
    server = threading.Thread(target=sync.serve, kwargs={"stop": stop}, daemon=True)
    server.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(errors_seen) < len(FailingSource.errors):
        errors_seen |= {e.split(":")[0] for e in records if e}
        time.sleep(0.05)
    assert server.is_alive()
    stop.set()
    server.join(5)
    assert errors_seen == {type(e).__name__ for e in FailingSource.errors}


# -- bootstrap: YAML that cannot be bombed, ids Airflow accepts --------------------------------------
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["variables: {x: *i}"]
)


@pytest.mark.parametrize(
    "text", [BILLION_LAUGHS, "variables: &v {x: *v}\n", "connections: {a: &c {conn_type: http}, b: *c}\n"]
)
def test_yaml_anchors_and_aliases_are_refused_at_once(tmp_path, text):
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(StackError, match="anchors and aliases") as refused:
        bootstrap.load(path, {})
    assert time.monotonic() - started < 2
    assert "nothing was applied" in refused.value.problem


def test_a_file_over_the_limit_is_refused_unread(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_bytes(b"# " + b"x" * (bootstrap.MAX_FILE_BYTES + 10))
    with pytest.raises(StackError, match="over 1024 KiB"):
        bootstrap.load(path, {})


@pytest.mark.parametrize("conn_id", ["has space", "x" * 251, "semi;colon", "<script>"])
def test_a_connection_id_airflow_refuses_is_refused_at_load_with_its_line(tmp_path, conn_id):
    path = tmp_path / "connections.yaml"
    path.write_text(f"connections:\n  ok: {{conn_type: http}}\n  '{conn_id}': {{conn_type: http}}\n")
    with pytest.raises(StackError) as refused:
        bootstrap.load(path, {})
    assert f"{path}:3: connections." in refused.value.problem
    assert "Airflow refuses this connection id" in refused.value.problem


def test_ids_airflow_accepts_load(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text("connections:\n  'aws:default/eu-west-1(main)#1': {conn_type: aws}\npools:\n  p: {slots: 1}\n")
    assert list(bootstrap.load(path, {}).connections) == ["aws:default/eu-west-1(main)#1"]


def test_publish_still_round_trips_through_the_bounded_source(tmp_path, httpserver):
    """The ordinary path is untouched by the bounds: a published release activates."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "dag.py").write_text("x = 1\n")
    out = tmp_path / "out"
    dagpublish.publish(folder, "3.0.0", out)
    for path in out.iterdir():
        httpserver.expect_request(f"/dags/{path.name}").respond_with_data(path.read_bytes())
    ok, decision = make_sync(tmp_path, httpserver.url_for("/dags/LATEST")).poll()
    assert ok and "activated dags-3.0.0" in decision and "checksum verified" in decision, decision


def test_a_link_target_with_an_overlong_part_is_refused(tmp_path):
    """Found by the fuzzer: such a link cannot resolve, and stat on it fails with ENAMETOOLONG."""
    path = tmp_path / "a.zip"
    path.write_bytes(zip_with([(zipfile.ZipInfo("dags"), b""), (symlink_info("a"), b"x" * 300)]))
    with pytest.raises(UnsafeArchive, match="has a target longer than"):
        extract(path, "zip", tmp_path / "out", LIMITS)
