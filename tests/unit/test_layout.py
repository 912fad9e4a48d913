"""The layout keeps its promises: the package docstring maps every module, host tools and the
core import with the standard library only, no module tests a component's name, and every
link into docs/ that the code or the docs give exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_stack
from airflow_stack.core import components

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "airflow_stack"
MODULES = sorted(
    p.relative_to(PACKAGE).with_suffix("").as_posix()
    for p in PACKAGE.rglob("*.py")
    if p.name not in ("__init__.py", "__main__.py")
)


def mapped_modules() -> list[str]:
    """`folder/module` for each line of the package docstring's map."""
    found, folder = [], ""
    for line in airflow_stack.__doc__.splitlines():
        if match := re.match(r"^    (\w+)/\s", line):
            folder = match[1] + "/"
        elif match := re.match(r"^      (\w+)\s", line):
            found.append(folder + match[1])
        elif match := re.match(r"^    (\w+)\s", line):
            folder = ""
            found.append(match[1])
    return sorted(found)


def test_the_package_docstring_maps_every_module():
    assert mapped_modules() == MODULES


def test_every_module_says_its_concern_in_a_docstring():
    missing = [p for p in PACKAGE.rglob("*.py") if not re.match(r'\s*(from __future__.*\n)?\s*"""', p.read_text())]
    assert missing == []


STDLIB_ONLY = [
    m.replace("/", ".") for m in MODULES if m.startswith(("host/", "core/", "image/")) and m != "core/metadb"
]


@pytest.mark.parametrize("module", STDLIB_ONLY)
def test_host_tools_and_the_core_import_with_the_standard_library_only(module):
    """Run as the Makefile runs them (`PYTHONPATH=src python3`), with no site-packages at all."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import airflow_stack.{module}"
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_module_tests_a_component_by_name():
    names = "|".join(re.escape(n) for n in components.COMPONENTS)
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*\(?["']({names})["']|["']({names})["']\s*(==|!=)""")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    for line in page.read_text().splitlines():
        if match := re.match(r"^#{1,6}\s+(.*)", line):
            anchors.add(re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-"))
    return anchors


def _links() -> list[tuple[str, Path, str]]:
    """(where, page, anchor) for every link into docs/ in the code, the compose file and the
    Makefile, and for every relative link in the README and the docs."""
    found = []
    for path in [*PACKAGE.rglob("*.py"), ROOT / "docker-compose.yml", ROOT / "Makefile", ROOT / "deploy/aws/Makefile"]:
        text = path.read_text()
        for match in re.finditer(r"docs/([\w-]+\.md)(?:#([\w-]+))?", text):
            found.append((str(path.relative_to(ROOT)), ROOT / "docs" / match[1], match[2] or ""))
        for match in re.finditer(r"docs\(f?[\"']([\w-]+\.md)(?:#([\w-]+))?[\"']\)", text):
            found.append((str(path.relative_to(ROOT)), ROOT / "docs" / match[1], match[2] or ""))
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "deploy" / "aws" / "README.md"]:
        for match in re.finditer(r"\]\(([^)#\s]*)(?:#([\w-]+))?\)", page.read_text()):
            target, anchor = match[1], match[2] or ""
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            found.append((str(page.relative_to(ROOT)), (page.parent / target).resolve() if target else page, anchor))
    return found


def test_every_link_into_the_docs_exists():
    broken = []
    for where, page, anchor in _links():
        if not page.exists():
            broken.append(f"{where}: {page.relative_to(ROOT)} does not exist")
        elif anchor and page.suffix == ".md" and anchor not in _anchors(page):
            broken.append(f"{where}: {page.relative_to(ROOT)} has no heading for #{anchor}")
    assert broken == []


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
