"""The image build's handling of your requirements.txt and packages.txt (repository root).

Runs inside `docker build` as a plain script (`python3 userdeps.py ...`), before this package
is installed, so it imports only the standard library (and `packaging`, one of Airflow's own
dependencies, in the venv):

    userdeps.py requirements FILE --uv UV
        install FILE into the running interpreter's venv with uv, every installed package held
        at its version (the stack's uv.lock is what is installed at that point). A line that
        asks for another version of an installed package is refused before anything is
        resolved, naming the package, the wanted version and the locked one; a conflict deeper
        in the dependencies is refused with uv's explanation and the locked versions it names.
    userdeps.py packages FILE
        print the Debian package names of FILE (one per line, `#` comments), for apt-get;
        refuses anything that is not a package name, optionally with `=version`.

Nothing is installed when a container starts: the image is built with them.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
# uv options a requirements file may hold: where packages come from (a private index, Artifactory).
ALLOWED_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "-i ", "-f ")
FIX = "fix: remove or relax the line, or change the stack's own pins (docs/dag-authoring.md#libraries-for-your-dags)"


class Refused(Exception):
    """The file cannot be installed as written; the message names the line and the fix."""


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, content) of the lines that are not blank or comments; comments stripped."""
    out = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            out.append((number, line))
    return out


def debian_packages(path: Path) -> list[str]:
    names, problems = [], []
    for number, line in _lines(path):
        for word in line.split():
            if DEBIAN_PACKAGE.match(word):
                names.append(word)
            else:
                problems.append(f"{path.name}:{number}: {word[:80]!r} is not a Debian package name (name[=version])")
    if problems:
        raise Refused("\n".join(problems) + "\nfix: list one Debian package per line, as `apt-get install` takes them")
    return names


def installed() -> dict[str, str]:
    """{canonical name: version} of the distributions in this interpreter's environment."""
    from packaging.utils import canonicalize_name

    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def check_requirements(path: Path, locked: dict[str, str]) -> list[str]:
    """The requirement lines to install; Refused when one asks for another version of a locked package."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    keep, problems = [], []
    for number, line in _lines(path):
        where = f"{path.name}:{number}"
        if line.startswith("-"):
            if line.startswith(ALLOWED_OPTIONS):
                keep.append(line)
            else:
                problems.append(
                    f"{where}: {line[:80]!r}: only --index-url, --extra-index-url and --find-links may appear "
                    "(no -e, -r or -c: the build sees this one file)"
                )
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(f"{where}: {line[:80]!r} is not a requirement: {exc}")
            continue
        if requirement.url:
            problems.append(f"{where}: {requirement.name} comes from a URL; the build installs from package indexes")
            continue
        name = canonicalize_name(requirement.name)
        version = locked.get(name)
        wanted = requirement.specifier
        if version is not None and wanted and not wanted.contains(version, prereleases=True):
            problems.append(
                f"{where}: {requirement.name}{requirement.specifier} would change {name}: "
                f"wanted {requirement.specifier}, locked {version}"
            )
            continue
        keep.append(line)
    if problems:
        raise Refused(
            f"{path.name} conflicts with the stack's lock (uv.lock), which pins Airflow, its providers and "
            "every package they need:\n  " + "\n  ".join(problems) + f"\n{FIX}"
        )
    return keep


def explain(uv_output: str, locked: dict[str, str]) -> str:
    """The locked versions of the packages uv's resolver names, for a conflict deeper in the tree."""
    from packaging.utils import canonicalize_name

    named = {canonicalize_name(m) for m in re.findall(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)(?:[=<>!~]=?|\[)", uv_output)}
    pinned = sorted(f"{name} {locked[name]}" for name in named if name in locked)
    return ", ".join(pinned) if pinned else "(none of the packages uv names)"


def install_requirements(path: Path, uv: str) -> int:
    locked = installed()
    lines = check_requirements(path, locked)
    if not any(not line.startswith("-") for line in lines):
        print(f"{path.name}: no requirement; nothing to install")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        requirements, constraints = Path(scratch, "requirements.txt"), Path(scratch, "constraints.txt")
        requirements.write_text("\n".join(lines) + "\n")
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(locked.items())))
        command = [uv, "pip", "install", "--python", sys.executable, "-r", str(requirements), "-c", str(constraints)]
        result = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise Refused(
            f"{path.name} conflicts with the stack's lock (uv.lock) through the packages it needs:\n"
            f"{result.stderr.strip()}\n"
            f"locked versions of the packages named above: {explain(result.stderr, locked)}\n{FIX}"
        )
    sys.stderr.write(result.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="userdeps.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("requirements")
    req.add_argument("file", type=Path)
    req.add_argument("--uv", default="uv")
    sub.add_parser("packages").add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "packages":
            print("\n".join(debian_packages(args.file)))
            return 0
        return install_requirements(args.file, args.uv)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
