"""Safe extraction of DAG artifacts (tar.gz and zip) into a fresh folder.

One policy for both formats, checked on every member before anything is written and again on
the bytes actually read (an archive's headers can lie):
- no absolute path, no `..` component, no NUL byte, nothing outside the destination;
- regular files and folders only, plus symbolic and hard links whose target stays inside the
  release (a hard link is written as a copy); no device, FIFO or socket files;
- at most `max_files` members and `max_bytes` bytes extracted (archive bombs), counted as the
  archive is read: a tar stops at the first member past the limit, a zip's entry count is read
  from its end record before its directory is parsed;
- names of at most MAX_NAME characters and parts of at most MAX_PART bytes, long-name and pax
  headers of at most MAX_HEADER bytes, link targets of at most MAX_NAME: each refused before
  it is read into memory;
- no entry inside a folder that the archive also makes a symbolic link;
- at least one regular file (an empty archive is refused, it would delete every DAG).

Files are written 0644 (0755 when executable in the archive), folders 0755, and every file
gets the extraction time as its mtime, so the dag-processor re-parses what changed.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MAX_NAME = 1024  # characters of an entry's name or a link's target
MAX_PART = 255  # bytes of one path part (a file name), as most filesystems allow
MAX_HEADER = 64 * 1024  # bytes of a tar long-name or pax header
_CHUNK = 1 << 20


class UnsafeArchive(Exception):
    """The archive breaks the extraction policy; nothing from it may be used."""


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_bytes: int


@dataclass(frozen=True)
class Member:
    name: str  # normalised, relative, posix
    kind: str  # "file" | "dir" | "symlink" | "hardlink"
    size: int
    executable: bool = False
    target: str = ""  # links: normalised target, relative to the release root
    source: object = None  # the TarInfo or ZipInfo


def archive_format(name: str) -> str:
    """`tar` or `zip` from a file name; UnsafeArchive for anything else."""
    lowered = name.lower()
    if lowered.endswith((".tar.gz", ".tgz")):
        return "tar"
    if lowered.endswith(".zip"):
        return "zip"
    raise UnsafeArchive(f"{name!r} is not a .tar.gz, .tgz or .zip archive")


def _too_long(part: str) -> bool:
    return len(part.encode("utf-8", "surrogateescape")) > MAX_PART


def _short(name: str) -> str:
    return repr(name) if len(name) <= 200 else f"{name[:200]!r}... ({len(name)} characters)"


def _normalise(name: str) -> str:
    if len(name) > MAX_NAME:
        raise UnsafeArchive(f"entry {_short(name)} has a name longer than {MAX_NAME} characters")
    if any(_too_long(part) for part in name.split("/")):
        raise UnsafeArchive(f"entry {_short(name)} has a path part longer than {MAX_PART} bytes")
    if "\x00" in name:
        raise UnsafeArchive(f"entry {name!r} has a NUL byte in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        raise UnsafeArchive(f"entry {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"entry {name!r} contains '..' (path traversal)")
    return "/".join(parts)


def _link_target(member: str, target: str, *, relative_to_member: bool) -> str:
    """The link's target as a path inside the release, or UnsafeArchive when it escapes."""
    if not target or target.startswith("/"):
        raise UnsafeArchive(f"link {_short(member)} points at {_short(target)}, outside the release")
    if len(target) > MAX_NAME or any(_too_long(part) for part in target.split("/")):
        raise UnsafeArchive(
            f"link {_short(member)} has a target longer than {MAX_NAME} characters or {MAX_PART} bytes a part"
        )
    base = posixpath.dirname(member) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise UnsafeArchive(f"link {member!r} points at {target!r}, outside the release")
    if member.startswith(resolved + "/"):
        raise UnsafeArchive(f"link {member!r} points at its own parent folder {target!r} (a loop)")
    return resolved


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a GNU long name or pax header over MAX_HEADER bytes before tarfile reads it whole."""

    def _proc_gnulong(self, tarfile):
        if self.size > MAX_HEADER:
            raise UnsafeArchive(f"the archive has a long-name header of {self.size} bytes (limit {MAX_HEADER})")
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):
        if self.size > MAX_HEADER:
            raise UnsafeArchive(f"the archive has a pax header of {self.size} bytes (limit {MAX_HEADER})")
        return super()._proc_pax(tarfile)


def _counted(members: Iterator[Member], limits: Limits) -> Iterator[Member]:
    for count, member in enumerate(members, start=1):
        if count > limits.max_files:
            raise UnsafeArchive(f"the archive has more than {limits.max_files} entries")
        yield member


def _tar_members(tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:
        name = _normalise(info.name)
        if not name:
            continue  # the archive's "./" root
        if info.isdir():
            yield Member(name, "dir", 0, source=info)
        elif info.isreg():
            yield Member(name, "file", info.size, bool(info.mode & 0o111), source=info)
        elif info.issym():
            target = _link_target(name, info.linkname, relative_to_member=True)
            yield Member(name, "symlink", 0, target=target, source=info)
        elif info.islnk():
            target = _link_target(name, info.linkname, relative_to_member=False)
            yield Member(name, "hardlink", 0, target=target, source=info)
        else:
            raise UnsafeArchive(f"entry {name!r} is a device, FIFO or other special file")


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        name = _normalise(info.filename)
        if not name:
            continue
        mode = info.external_attr >> 16
        if info.is_dir():
            yield Member(name, "dir", 0, source=info)
        elif stat.S_ISLNK(mode):
            if info.file_size > MAX_NAME:
                raise UnsafeArchive(f"link {_short(name)} has a target longer than {MAX_NAME} characters")
            with archive.open(info) as handle:
                raw = handle.read(MAX_NAME + 1)
            if len(raw) > MAX_NAME:
                raise UnsafeArchive(f"link {_short(name)} has a target longer than {MAX_NAME} characters")
            target = _link_target(name, raw.decode("utf-8", "replace"), relative_to_member=True)
            yield Member(name, "symlink", 0, target=target, source=info)
        elif stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):  # zip tools often store no file type
            yield Member(name, "file", info.file_size, bool(mode & 0o111), source=info)
        else:
            raise UnsafeArchive(f"entry {name!r} is a device, FIFO or other special file")


def _zip_entry_count(archive_path: Path) -> int | None:
    """The entry count in a zip's end record, read before zipfile parses its whole directory."""
    with open(archive_path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # noqa: SLF001 - the stdlib's own reader of the end record
    return None if end is None else end[zipfile._ECD_ENTRIES_TOTAL]  # noqa: SLF001


def _check(members: list[Member], limits: Limits) -> None:
    if len(members) > limits.max_files:
        raise UnsafeArchive(f"the archive has more than {limits.max_files} entries")
    links = {m.name for m in members if m.kind == "symlink"}
    for m in members:
        parents = [m.name[:i] for i, c in enumerate(m.name) if c == "/"]
        if through := next((p for p in parents if p in links), None):
            raise UnsafeArchive(
                f"entry {_short(m.name)} is inside {_short(through)}, which the archive also makes a symbolic link"
            )
    seen: dict[str, str] = {}
    for m in members:
        if m.name in seen and not (m.kind == "dir" and seen[m.name] == "dir"):
            raise UnsafeArchive(f"entry {_short(m.name)} appears twice in the archive")
        seen[m.name] = m.kind
    declared = sum(m.size for m in members)
    if declared > limits.max_bytes:
        raise UnsafeArchive(f"the archive would extract to {declared} bytes, over the limit of {limits.max_bytes}")
    if not any(m.kind == "file" for m in members):
        raise UnsafeArchive("the archive is empty (no regular file): it would delete every DAG")
    names = {m.name for m in members}
    for m in members:
        if m.kind == "hardlink" and m.target not in names:
            raise UnsafeArchive(f"hard link {m.name!r} points at {m.target!r}, which is not in the archive")


class _Budget:
    def __init__(self, limits: Limits):
        self.left = limits.max_bytes
        self.limit = limits.max_bytes

    def copy(self, source: BinaryIO, target: BinaryIO) -> None:
        while chunk := source.read(_CHUNK):
            self.left -= len(chunk)
            if self.left < 0:
                raise UnsafeArchive(f"the archive extracts to more than {self.limit} bytes (its headers understate it)")
            target.write(chunk)


def _inside(root: Path, path: Path) -> Path:
    """`path`, after checking that no symlink already written leads it out of `root`."""
    real = path.parent.resolve()
    if real != root and root not in real.parents:
        raise UnsafeArchive(f"entry {path.relative_to(root)} would be written through a link outside the release")
    return path


def _write_file(root: Path, member: Member, opener, budget: _Budget) -> None:
    path = _inside(root, root / member.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o755 if member.executable else 0o644)
    except FileExistsError:
        raise UnsafeArchive(f"entry {member.name!r} appears twice in the archive") from None
    with os.fdopen(fd, "wb") as target, opener() as source:
        budget.copy(source, target)


def extract(archive_path: Path, fmt: str, destination: Path, limits: Limits) -> int:
    """Extract into `destination` (created, must not exist); return the number of files.

    Raises UnsafeArchive for a policy breach and for a corrupt or truncated archive; the
    caller removes `destination` then.
    """
    destination.mkdir(mode=0o755)
    root = destination.resolve()
    budget = _Budget(limits)
    try:
        if fmt == "tar":
            with tarfile.open(archive_path, "r:gz", tarinfo=_BoundedTarInfo) as tar:
                members = list(_counted(_tar_members(tar), limits))
                _check(members, limits)
                return _extract_members(root, members, budget, lambda m: tar.extractfile(m.source))
        entries = _zip_entry_count(archive_path)
        if entries is not None and entries > limits.max_files:
            raise UnsafeArchive(f"the archive has more than {limits.max_files} entries ({entries})")
        with zipfile.ZipFile(archive_path) as archive:
            members = list(_counted(_zip_members(archive), limits))
            _check(members, limits)
            return _extract_members(root, members, budget, lambda m: archive.open(m.source))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, zipfile.LargeZipFile) as exc:
        if isinstance(exc, UnsafeArchive):
            raise
        # The error names a path under staging or the archive's own text: neither helps the reader.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200]
        raise UnsafeArchive(f"the archive is corrupt or truncated ({type(exc).__name__}: {reason})") from None


def _extract_members(root: Path, members: list[Member], budget: _Budget, open_member) -> int:
    files = 0
    for member in members:
        if member.kind == "dir":
            _inside(root, root / member.name).mkdir(parents=True, exist_ok=True, mode=0o755)
        elif member.kind == "file":
            _write_file(root, member, lambda m=member: open_member(m), budget)
            files += 1
    by_name = {m.name: m for m in members}
    for member in members:
        if member.kind == "hardlink":
            original = by_name[member.target]
            if original.kind != "file":
                raise UnsafeArchive(f"hard link {member.name!r} points at {member.target!r}, which is not a file")
            copy = Member(member.name, "file", original.size, original.executable, source=original.source)
            _write_file(root, copy, lambda m=original: open_member(m), budget)
            files += 1
        elif member.kind == "symlink":
            path = _inside(root, root / member.name)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            os.symlink(posixpath.relpath(member.target, posixpath.dirname(member.name) or "."), path)
    return files
