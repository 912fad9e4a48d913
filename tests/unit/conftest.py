import socket

import pytest


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    """moto's server (every AWS service it emulates) on a free loopback port, for the session."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_test_credentials(monkeypatch) -> None:
    """Fake credentials and a region for boto3 clients pointed at moto."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(monkeypatch):
    """In-process moto (every service) with test credentials in the region of the examples."""
    from moto import mock_aws

    from tests.unit.aws_examples import REGION

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def stacks(aws, tmp_path):
    """The three stacks deployed in moto as `make -C deploy/aws` deploys them; their outputs."""
    from tests.unit.aws_examples import deploy_stacks, network

    ids = network()
    return {**deploy_stacks(tmp_path, ids), "ids": ids, "tmp_path": tmp_path}
