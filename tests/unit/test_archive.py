"""Safe extraction: what a release may contain, and every way an archive can try to escape."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_stack.dags.archive import Limits, UnsafeArchive, archive_format, extract

LIMITS = Limits(max_files=100, max_bytes=1_000_000)


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_a_good_tar_extracts_with_safe_modes_and_fresh_mtimes(tmp_path: Path):
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [
            (entry("pkg", tarfile.DIRTYPE, mode=0o777), None),
            (entry("pkg/dag.py", mode=0o4777), b"print('dag')\n"),
            (entry("pkg/helper.sh", mode=0o755), b"#!/bin/sh\n"),
            (entry("pkg/alias.py", tarfile.SYMTYPE, link="dag.py"), None),
            (entry("copy.py", tarfile.LNKTYPE, link="pkg/dag.py"), None),
        ],
    )
    release = tmp_path / "release"
    assert extract(archive, "tar", release, LIMITS) == 3
    assert (release / "pkg/dag.py").read_text() == "print('dag')\n"
    assert stat.S_IMODE((release / "pkg/dag.py").stat().st_mode) == 0o755  # setuid dropped
    assert stat.S_IMODE((release / "pkg").stat().st_mode) == 0o755
    assert os.readlink(release / "pkg/alias.py") == "dag.py"
    assert (release / "copy.py").read_text() == "print('dag')\n" and not (release / "copy.py").is_symlink()
    assert (release / "pkg/dag.py").stat().st_mtime > 1_000_000_000  # not the archive's 0


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (entry("/etc/cron.d/evil"), "absolute path"),
        (entry("../outside.py"), "path traversal"),
        (entry("dags/../../outside.py"), "path traversal"),
        (entry("link", tarfile.SYMTYPE, link="/etc/passwd"), "outside the release"),
        (entry("dags/link", tarfile.SYMTYPE, link="../../etc"), "outside the release"),
        (entry("dags/loop", tarfile.SYMTYPE, link=".."), "outside the release"),
        (entry("hard", tarfile.LNKTYPE, link="/etc/passwd"), "outside the release"),
        (entry("dev", tarfile.CHRTYPE), "device, FIFO or other special file"),
        (entry("fifo", tarfile.FIFOTYPE), "device, FIFO or other special file"),
    ],
)
def test_an_escaping_or_special_tar_entry_is_refused_and_nothing_is_written_outside(tmp_path, member, message):
    archive = make_tar(tmp_path / "a.tar.gz", [(entry("dag.py"), b"x"), (member, b"" if member.isreg() else None)])
    with pytest.raises(UnsafeArchive, match=message):
        extract(archive, "tar", tmp_path / "release", LIMITS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "release"]


def test_a_symlink_to_its_own_folder_is_refused(tmp_path: Path):
    archive = make_tar(
        tmp_path / "a.tar.gz", [(entry("a/dag.py"), b"x"), (entry("a/b/up", tarfile.SYMTYPE, link=".."), None)]
    )
    with pytest.raises(UnsafeArchive, match="its own parent folder"):
        extract(archive, "tar", tmp_path / "release", LIMITS)


def test_a_file_written_through_an_earlier_symlink_is_refused(tmp_path: Path):
    # A link inside the release is fine; links are created last, so no file lands through one.
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [
            (entry("real", tarfile.DIRTYPE), None),
            (entry("alias", tarfile.SYMTYPE, link="real"), None),
            (entry("alias/dag.py"), b"x"),
        ],
    )
    with pytest.raises(UnsafeArchive):
        extract(archive, "tar", tmp_path / "release", LIMITS)


def test_limits_on_files_and_bytes(tmp_path: Path):
    many = make_tar(tmp_path / "many.tar.gz", [(entry(f"f{i}.py"), b"x") for i in range(5)])
    with pytest.raises(UnsafeArchive, match="more than 3 entries"):
        extract(many, "tar", tmp_path / "r1", Limits(max_files=3, max_bytes=10**6))
    big = make_tar(tmp_path / "big.tar.gz", [(entry("big.py"), b"0" * 5000)])
    with pytest.raises(UnsafeArchive, match="over the limit of 1000"):
        extract(big, "tar", tmp_path / "r2", Limits(max_files=10, max_bytes=1000))


def test_a_zip_whose_headers_understate_its_size_is_refused(tmp_path: Path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dag.py", b"0" * 200_000)
    data = bytearray(path.read_bytes())
    # Rewrite the central directory's uncompressed size (offset 24 in the entry) to 10 bytes.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    # zipfile reads only the declared 10 bytes, and then its CRC check fails.
    with pytest.raises(UnsafeArchive, match="corrupt or truncated"):
        extract(path, "zip", tmp_path / "release", Limits(max_files=10, max_bytes=1000))


def test_zip_entries_follow_the_same_policy(tmp_path: Path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("dags/dag.py", "x = 1\n")
    assert extract(good, "zip", tmp_path / "r1", LIMITS) == 1
    for name, message in [("../evil.py", "path traversal"), ("/abs.py", "absolute path")]:
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("ok.py", "x")
            archive.writestr(name, "x")
        with pytest.raises(UnsafeArchive, match=message):
            extract(bad, "zip", tmp_path / f"r-{message[:4]}", LIMITS)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        archive.writestr("ok.py", "x")
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "../../etc/passwd")
    with pytest.raises(UnsafeArchive, match="outside the release"):
        extract(link, "zip", tmp_path / "r3", LIMITS)


def test_empty_truncated_and_unknown_archives_are_refused(tmp_path: Path):
    empty = make_tar(tmp_path / "empty.tar.gz", [(entry("only-a-folder", tarfile.DIRTYPE), None)])
    with pytest.raises(UnsafeArchive, match="empty"):
        extract(empty, "tar", tmp_path / "r1", LIMITS)
    whole = make_tar(tmp_path / "whole.tar.gz", [(entry("dag.py"), os.urandom(50_000))])
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(whole.read_bytes()[:20_000])
    with pytest.raises(UnsafeArchive, match="corrupt or truncated"):
        extract(truncated, "tar", tmp_path / "r2", LIMITS)
    with pytest.raises(UnsafeArchive, match="not a .tar.gz"):
        archive_format("dags.rar")
