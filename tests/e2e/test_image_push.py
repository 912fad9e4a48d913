"""`make push` into a real registry (Debian's build of the distribution registry, dev/registry,
on 127.0.0.1): one architecture is pushed as one image; several (`ARCH="amd64 arm64"`) are pushed
under one tag as a manifest list whose entries are the per-architecture images, so one image
reference runs on X86_64 and ARM64 Fargate alike; an image built for another CPU than it is
pushed as, or a missing one, is refused before anything is pushed.

The images pushed are small stand-ins (FROM scratch, one file, built for each platform without
emulation): this tests what `make push` does with the images `make build PLATFORM=...` tags, not
the Airflow image built for arm64, which needs QEMU on an x86 machine (not here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from .conftest import ROOT, docker, poll

REGISTRY_IMAGE = "airflow-stack-registry:test"
CONTAINER = "airflow-stack-e2e-registry"
LOCAL = "airflow-stack-push-test:latest"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join([LIST, IMAGE_MANIFEST, "application/vnd.oci.image.index.v1+json"])


def registry_logs() -> str:
    return docker("logs", "--tail", "50", CONTAINER, check=False).stderr


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """host:port of a fresh registry on 127.0.0.1."""
    docker("build", "--quiet", "-t", REGISTRY_IMAGE, str(ROOT / "dev" / "registry"), timeout=600)
    docker("rm", "-f", CONTAINER, check=False)
    docker("run", "-d", "--name", CONTAINER, "-p", "127.0.0.1::5000", REGISTRY_IMAGE)
    try:
        address = docker("port", CONTAINER, "5000/tcp").stdout.splitlines()[0].strip()
        poll(
            "the registry answering /v2/",
            lambda: httpx.get(f"http://{address}/v2/", timeout=5).status_code == 200,
            60,
            registry_logs,
        )
        yield address
    finally:
        docker("rm", "-f", CONTAINER, check=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Iterator[None]:
    """LOCAL-amd64 and LOCAL-arm64, each built for its platform, as `make build PLATFORM=...` tags them."""
    context = tmp_path_factory.mktemp("tiny")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    for arch in ("amd64", "arm64"):
        (context / "marker").write_text(arch)
        docker("build", "--quiet", "--platform", f"linux/{arch}", "-t", f"{LOCAL}-{arch}", str(context), timeout=300)
    yield
    for arch in ("amd64", "arm64", "wrong"):
        docker("rmi", "-f", f"{LOCAL}-{arch}", check=False)


def make_push(registry: str, version: str, arch: str, image: str = LOCAL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "push",
            f"REGISTRY={registry}/team",
            f"VERSION={version}",
            f"ARCH={arch}",
            f"AIRFLOW_IMAGE={image}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def manifest(registry: str, tag: str) -> httpx.Response:
    return httpx.get(f"http://{registry}/v2/team/airflow-stack/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=30)


def architecture_of(registry: str, tag: str) -> str:
    """The architecture in the image config of an image manifest."""
    config = manifest(registry, tag).json()["config"]["digest"]
    blob = httpx.get(f"http://{registry}/v2/team/airflow-stack/blobs/{config}", timeout=30, follow_redirects=True)
    return f"{blob.json()['os']}/{blob.json()['architecture']}"


def test_two_architectures_are_one_tag(registry, images):
    done = make_push(registry, "v1", "amd64 arm64")
    assert done.returncode == 0, done.stderr + registry_logs()

    listed = manifest(registry, "v1")
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"] == LIST
    entries = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in listed.json()["manifests"]
    }
    assert set(entries) == {"linux/amd64", "linux/arm64"}
    for arch in ("amd64", "arm64"):
        # Each entry is the image pushed for that architecture, built for it.
        part = manifest(registry, f"v1-{arch}")
        assert part.headers["docker-content-digest"] == entries[f"linux/{arch}"]
        assert architecture_of(registry, f"v1-{arch}") == f"linux/{arch}"


def test_one_architecture_is_one_image(registry, images):
    done = make_push(registry, "v2", "arm64", image=f"{LOCAL}-arm64")
    assert done.returncode == 0, done.stderr + registry_logs()

    pushed = manifest(registry, "v2")
    assert pushed.headers["content-type"] == IMAGE_MANIFEST
    assert architecture_of(registry, "v2") == "linux/arm64"


def test_an_image_built_for_another_cpu_is_refused_before_any_push(registry, images):
    docker("tag", f"{LOCAL}-amd64", f"{LOCAL}-wrong")
    done = make_push(registry, "v3", "amd64 arm64", image=f"{LOCAL}-wrong")
    assert done.returncode != 0
    assert "no local image airflow-stack-push-test:latest-wrong-amd64" in done.stderr
    assert 'make build PLATFORM="linux/amd64 linux/arm64"' in done.stderr

    # A single image built for amd64, pushed as arm64.
    done = make_push(registry, "v3", "arm64", image=f"{LOCAL}-amd64")
    assert done.returncode != 0
    assert "is built for linux/amd64, but ARCH=arm64" in done.stderr, done.stderr
    assert "make build PLATFORM=linux/arm64" in done.stderr
    assert manifest(registry, "v3").status_code == 404
    assert manifest(registry, "v3-amd64").status_code == 404


def test_a_list_with_one_image_of_the_wrong_cpu_pushes_nothing(registry, images):
    # LOCAL-arm64 replaced by an amd64 image under its name: the list would lie about arm64.
    docker("tag", f"{LOCAL}-arm64", f"{LOCAL}-keep-arm64")
    docker("tag", f"{LOCAL}-amd64", f"{LOCAL}-arm64")
    try:
        done = make_push(registry, "v4", "amd64 arm64")
    finally:
        docker("tag", f"{LOCAL}-keep-arm64", f"{LOCAL}-arm64")
        docker("rmi", f"{LOCAL}-keep-arm64", check=False)
    assert done.returncode != 0
    assert f"{LOCAL}-arm64 is built for linux/amd64, but ARCH=arm64" in done.stderr, done.stderr
    assert manifest(registry, "v4").status_code == 404
    assert manifest(registry, "v4-amd64").status_code == 404
