"""airflow_stack.host.imagepush's choices that need no Docker: which local images a push takes
for one or several architectures, which architectures it refuses and why, which registries it
speaks plain HTTP to, and the tags `make build` gives each platform. The pushes themselves are
tested against a real registry in tests/e2e/test_image_push.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.host import imagepush

ROOT = Path(__file__).resolve().parents[2]


def test_one_architecture_pushes_the_image_itself():
    assert imagepush.local_images("airflow-stack:latest", ["arm64"]) == [("airflow-stack:latest", "arm64")]


def test_several_architectures_push_one_image_each():
    assert imagepush.local_images("airflow-stack:latest", ["amd64", "arm64"]) == [
        ("airflow-stack:latest-amd64", "amd64"),
        ("airflow-stack:latest-arm64", "arm64"),
    ]


@pytest.mark.parametrize("archs", [["x86_64"], ["amd64", "amd64"], [], ["arm"]])
def test_architectures_fargate_does_not_run_are_refused(archs):
    with pytest.raises(StackError) as refused:
        imagepush.local_images("airflow-stack:latest", archs)
    assert refused.value.setting == "ARCH"
    assert "amd64 arm64" in refused.value.fix


@pytest.mark.parametrize(
    ("registry", "plain_http"),
    [
        ("127.0.0.1:5000/team", True),
        ("localhost:5000", True),
        ("[::1]:5000/x", True),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", False),
        ("registry.example.com:443/team", False),
        ("10.0.0.5:5000", False),
    ],
)
def test_only_registries_on_this_machine_are_spoken_to_in_plain_http(registry, plain_http):
    assert imagepush.insecure(registry) is plain_http


def dry_build(*variables: str) -> str:
    """The commands `make build` would run with these variables (`make -n`)."""
    return subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "build", *variables],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_make_build_tags_each_platform_by_its_architecture():
    dry = dry_build("PLATFORM=linux/amd64 linux/arm64", "AIRFLOW_IMAGE=airflow-stack:1.0")
    assert "--platform linux/amd64" in dry and "-t airflow-stack:1.0-amd64 ." in dry
    assert "--platform linux/arm64" in dry and "-t airflow-stack:1.0-arm64 ." in dry
    single = dry_build("PLATFORM=linux/arm64")
    assert "--platform linux/arm64" in single and "-t airflow-stack:latest ." in single
