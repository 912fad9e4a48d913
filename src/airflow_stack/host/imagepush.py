"""The host side of `make push`: pushes the Airflow image for one CPU architecture, or for several
under one tag (a multi-architecture manifest list), after checking that each local image is built
for the architecture it is pushed as. Standard library only, like host.envfile; drives the docker
CLI.

    python3 -m airflow_stack.host.imagepush push --image IMAGE --registry REGISTRY --version TAG ARCH...
        one ARCH: IMAGE is pushed as REGISTRY/airflow-stack:TAG;
        several: IMAGE-<arch> (what `make build PLATFORM="linux/amd64 linux/arm64"` tags) is pushed
        as REGISTRY/airflow-stack:TAG-<arch> for each, then REGISTRY/airflow-stack:TAG is the
        manifest list of them all, so one tag runs on X86_64 and ARM64 Fargate alike
    python3 -m airflow_stack.host.imagepush images --image IMAGE ARCH...
        the local images that `push` would push, one per line
"""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys

from airflow_stack.core.errors import StackError

REPOSITORY = "airflow-stack"
# Docker's names of the CPUs Fargate runs (RuntimePlatform's CpuArchitecture X86_64 and ARM64).
ARCHITECTURES = {"amd64": "X86_64", "arm64": "ARM64"}


def local_images(image: str, archs: list[str]) -> list[tuple[str, str]]:
    """(local image, architecture) pairs: IMAGE itself for one architecture, IMAGE-<arch> for several."""
    for arch in archs:
        if arch not in ARCHITECTURES:
            raise StackError(
                f"{arch!r} is not a CPU architecture Fargate runs",
                setting="ARCH",
                fix='ARCH=amd64 (X86_64), ARCH=arm64 (ARM64), or ARCH="amd64 arm64" for one tag that runs on both',
            )
    if len(set(archs)) != len(archs) or not archs:
        raise StackError(
            f"ARCH lists {' '.join(archs) or 'nothing'}; each architecture once, at least one",
            setting="ARCH",
            fix='ARCH=amd64, or ARCH="amd64 arm64"',
        )
    if len(archs) == 1:
        return [(image, archs[0])]
    return [(f"{image}-{arch}", arch) for arch in archs]


def insecure(registry: str) -> bool:
    """A registry on this machine (localhost, 127.0.0.0/8, ::1) speaks plain HTTP; Docker's daemon
    already allows that for these addresses, and the `docker manifest` commands need to be told."""
    host = registry.split("/", 1)[0]
    host = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def docker(*args: str) -> str:
    """Run the docker CLI; its stdout, or a refusal with its stderr."""
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise StackError("the docker CLI is not installed", fix="install Docker (scripts/install-docker.sh)") from None
    if done.returncode != 0:
        raise StackError(f"docker {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def check_architecture(local: str, arch: str, archs: list[str]) -> None:
    """Refuse a missing local image, or one built for another OS/CPU than linux/<arch>."""
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", local],
        capture_output=True,
        text=True,
        timeout=60,
    )
    several = len(archs) > 1
    build = (
        f'make build PLATFORM="{" ".join("linux/" + a for a in archs)}"'
        if several
        else f"make build PLATFORM=linux/{arch}"
    )
    if result.returncode != 0:
        raise StackError(
            f"there is no local image {local} to push as {arch}",
            setting="ARCH",
            fix=f"{build} (several platforms are tagged <image>-<arch>), or drop {arch} from ARCH",
        )
    found = result.stdout.strip()
    if found != f"linux/{arch}":
        raise StackError(
            f"{local} is built for {found}, but ARCH={arch} ({ARCHITECTURES[arch]} on Fargate) "
            f"pushes it as linux/{arch}",
            setting="ARCH",
            fix=f"{build}, or ARCH={found.rsplit('/', 1)[-1]} with the stacks' CpuArchitecture set to match",
        )


def push(image: str, registry: str, version: str, archs: list[str]) -> str:
    """Push and return the reference to deploy (one tag for every architecture in `archs`)."""
    if not registry:
        raise StackError("REGISTRY is empty", setting="REGISTRY", fix="make push REGISTRY=registry.example.com/team")
    pairs = local_images(image, archs)
    several = len(pairs) > 1
    for local, arch in pairs:
        check_architecture(local, arch, archs)
    target = f"{registry}/{REPOSITORY}:{version}"
    if not several:
        docker("tag", image, target)
        docker("push", "--quiet", target)
        return target
    flags = ["--insecure"] if insecure(registry) else []
    parts = []
    for local, arch in pairs:
        part = f"{target}-{arch}"
        docker("tag", local, part)
        docker("push", "--quiet", part)
        parts.append(part)
    # A list left on this machine by an interrupted push would make `create` refuse.
    subprocess.run(["docker", "manifest", "rm", target], capture_output=True, timeout=60)
    docker("manifest", "create", *flags, target, *parts)
    docker("manifest", "push", "--purge", *flags, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagepush", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    push_command = commands.add_parser("push")
    push_command.add_argument("--image", required=True)
    push_command.add_argument("--registry", default="")
    push_command.add_argument("--version", required=True)
    push_command.add_argument("archs", nargs="*")
    images_command = commands.add_parser("images")
    images_command.add_argument("--image", required=True)
    images_command.add_argument("archs", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.command == "images":
            for local, _ in local_images(args.image, args.archs):
                print(local)
            return 0
        target = push(args.image, args.registry, args.version, args.archs)
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    kind = f"manifest list for {' and '.join(args.archs)}" if len(args.archs) > 1 else args.archs[0]
    print(f"push: {target} ({kind})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
