"""Property-based tests of what reads hostile input. Generated archives (tar.gz and zip) with
random names, links, sizes and modes either are refused with UnsafeArchive or extract only
inside the release, within the limits; generated bootstrap files either load or are refused
with a StackError, never anything else."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from airflow_stack.core.errors import StackError
from airflow_stack.dags.archive import Limits, UnsafeArchive, extract
from airflow_stack.jobs import bootstrap

LIMITS = Limits(max_files=12, max_bytes=20_000)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Mostly ordinary names, so that many archives extract and the "stays inside" side is exercised;
# now and then a hostile part or prefix.
SAFE_PARTS = st.sampled_from(["dags", "a", "b", "lib", "é", "x.py"])
HOSTILE_PARTS = st.one_of(
    st.sampled_from(["..", ".", "", "x" * 300, "\\", "c:", "dags/.."]), st.text(min_size=1, max_size=6)
)
PARTS = st.one_of(SAFE_PARTS, SAFE_PARTS, SAFE_PARTS, SAFE_PARTS, HOSTILE_PARTS)
PATHS = st.builds(
    lambda prefix, parts: prefix + "/".join(parts),
    st.sampled_from(["", "", "", "", "", "", "/", "./", "../"]),
    st.lists(PARTS, min_size=1, max_size=3),
)
TARGETS = st.builds(
    lambda ups, parts: "../" * ups + "/".join(parts),
    st.integers(min_value=0, max_value=3),
    st.lists(PARTS, min_size=1, max_size=3),
)
SAFE_PATHS = st.lists(SAFE_PARTS, min_size=1, max_size=3).map("/".join)
# A few ordinary files, then members of any kind whose names and targets may be hostile.
MEMBERS = st.builds(
    lambda files, others: files + others,
    st.lists(
        st.tuples(SAFE_PATHS, st.just("file"), st.just(""), st.binary(max_size=3000), st.integers(0, 0o7777)),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.tuples(
            st.one_of(SAFE_PATHS, PATHS),
            st.sampled_from(["file", "dir", "symlink", "symlink", "hardlink"]),
            st.one_of(TARGETS, SAFE_PATHS),
            st.binary(max_size=3000),
            st.integers(min_value=0, max_value=0o7777),
        ),
        max_size=5,
    ),
)


def build_tar(members) -> bytes:
    buffer = io.BytesIO()
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, target, data, mode in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kinds[kind], mode
            if kind in ("symlink", "hardlink"):
                info.linkname = target
            info.size = len(data) if kind == "file" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return buffer.getvalue()


def build_zip(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, kind, target, data, mode in members:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
            file_type = {"symlink": stat.S_IFLNK, "dir": stat.S_IFDIR}.get(kind, stat.S_IFREG)
            info.external_attr = (file_type | (mode & 0o777)) << 16
            archive.writestr(info, target.encode() if kind == "symlink" else (b"" if kind == "dir" else data))
    return buffer.getvalue()


def assert_contained(workdir: Path, release: Path) -> None:
    """Only `release` was created in `workdir`, every path in it resolves inside it, and the
    limits hold."""
    assert sorted(p.name for p in workdir.iterdir()) == ["archive", "release"]
    root = release.resolve()
    files = size = 0
    for folder, dirnames, filenames in os.walk(release):
        for name in dirnames + filenames:
            path = Path(folder, name)
            resolved = Path(os.path.realpath(path))
            assert resolved == root or root in resolved.parents, f"{path} leads to {resolved}"
            if not path.is_symlink() and path.is_file():
                files += 1
                size += path.stat().st_size
                assert path.stat().st_mode & 0o7022 == 0, oct(path.stat().st_mode)
    assert files <= LIMITS.max_files and size <= LIMITS.max_bytes


def check_extraction(members, fmt: str) -> None:
    try:
        data = build_tar(members) if fmt == "tar" else build_zip(members)
    except (ValueError, UnicodeError, OverflowError, tarfile.TarError, zipfile.BadZipFile):
        reject()  # the library would not even write such an archive
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        archive = workdir / "archive"
        archive.write_bytes(data)
        try:
            extract(archive, fmt, workdir / "release", LIMITS)
        except UnsafeArchive:
            return
        assert_contained(workdir, workdir / "release")


@FUZZ
@given(MEMBERS)
def test_a_generated_tar_gz_is_refused_or_stays_inside_the_release(members):
    check_extraction(members, "tar")


@FUZZ
@given(MEMBERS)
@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_generated_zip_is_refused_or_stays_inside_the_release(members):
    check_extraction(members, "zip")


# -- the bootstrap file ----------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=12),
    st.sampled_from(["${HOME}", "${UNSET_X}", "${UNSET_Y:-d}", "${file:/nonexistent/secret}", "!!python/none"]),
)
KEYS = st.one_of(
    st.sampled_from(["connections", "variables", "pools", "conn_type", "slots", "extra", "host", "port", "a b"]),
    st.text(min_size=1, max_size=10),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=20,
)
TOP = st.fixed_dictionaries(
    {},
    optional={
        "connections": st.dictionaries(KEYS, DOCUMENTS, max_size=3),
        "variables": st.dictionaries(KEYS, DOCUMENTS, max_size=3),
        "pools": st.dictionaries(KEYS, DOCUMENTS, max_size=3),
    },
)
TEXTS = st.one_of(
    TOP.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=300),
    st.tuples(TOP, st.sampled_from(["&a", "*a", "!!python/object:os.system", "&x [*x]", "{", "- -"])).map(
        lambda pair: yaml.safe_dump(pair[0]) + f"extra: {pair[1]}\n"
    ),
)


@FUZZ
@given(TEXTS)
def test_a_generated_bootstrap_file_loads_or_is_refused_with_a_stack_error(text):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "connections.yaml")
        path.write_text(text, errors="surrogatepass")
        try:
            spec = bootstrap.load(path, {"HOME": "/home/x"})
        except StackError as refusal:
            assert refusal.setting == bootstrap.FILE_SETTING
            return
        assert set(spec.connections) | set(spec.variables) | set(spec.pools) is not None
