"""image/airflowpatches: a patch applies only where its text is found exactly once, recompiles what it
changed, and otherwise stops the build naming the file and the fix. The image's own patches are
applied by every image build and their effect is checked in the image (tests/e2e/test_stack.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from airflow_stack.image import airflowpatches
from airflow_stack.image.airflowpatches import Patch, PatchFailed

SOURCE = "import sys\n\nimport heavy\n\n\ndef use():\n    return heavy.thing()\n"
LAZY = Patch(
    "lazy-heavy",
    "pkg/mod.py",
    (
        ("import sys\n\nimport heavy\n", "import sys\n"),
        ("    return heavy.thing()\n", "    import heavy\n\n    return heavy.thing()\n"),
    ),
)


@pytest.fixture
def site(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SOURCE)
    return tmp_path


def test_a_patch_replaces_its_text_and_recompiles_the_file(site):
    assert airflowpatches.apply(LAZY, site) == "image patch lazy-heavy: applied to pkg/mod.py"
    path = site / "pkg" / "mod.py"
    assert path.read_text() == "import sys\n\n\ndef use():\n    import heavy\n\n    return heavy.thing()\n"
    assert Path(importlib.util.cache_from_source(str(path))).is_file()


@pytest.mark.parametrize("source", [SOURCE.replace("import heavy\n", ""), SOURCE + SOURCE])
def test_text_not_found_exactly_once_stops_the_build_and_changes_nothing(site, source):
    path = site / "pkg" / "mod.py"
    path.write_text(source)
    with pytest.raises(PatchFailed) as refused:
        airflowpatches.apply(LAZY, site)
    message = str(refused.value)
    assert "image patch lazy-heavy: part 1 of 2 is in pkg/mod.py" in message and "not once" in message
    assert "fix: remove the patch from src/airflow_stack/image/airflowpatches.py" in message
    assert path.read_text() == source


def test_a_missing_file_stops_the_build(tmp_path):
    with pytest.raises(PatchFailed, match=r"image patch lazy-heavy: cannot read .*pkg/mod.py"):
        airflowpatches.apply(LAZY, tmp_path)


def test_the_image_patches_name_what_they_change():
    assert [(p.name, p.file) for p in airflowpatches.PATCHES] == [
        ("lazy-libcst", "airflow/sdk/definitions/_internal/decorators.py"),
        ("lazy-svcs-aiohttp", "svcs/__init__.py"),
        ("lazy-execution-api", "airflow/dag_processing/manager.py"),
        ("lazy-fab-fastapi-app", "airflow/providers/fab/www/security_manager.py"),
        ("lazy-fab-fastapi-app", "airflow/providers/fab/www/utils.py"),
    ]
    for patch in airflowpatches.PATCHES:
        assert patch.name in airflowpatches.__doc__
    # Each module no longer imports its heavy dependency where it is loaded; what needs it does.
    libcst, svcs, execution_api, *fab = (dict(p.replacements) for p in airflowpatches.PATCHES)
    old = next(iter(libcst))
    assert "import libcst as cst\n" in old and "libcst" not in libcst[old]
    [(old, new)] = svcs.items()
    assert "from . import aiohttp" in old and new.startswith("# airflow-stack") and "def __getattr__(name):" in new
    [(old, new)] = execution_api.items()
    assert "factory=_make_execution_api" in old and "@functools.cached_property" in new
    for replacements in fab:
        [(old, new)] = replacements.items()
        assert old.startswith("from airflow.api_fastapi.app import") and "def get_auth_manager():" in new
