"""The image build's handling of requirements.txt and packages.txt (airflow_stack.image.userdeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_stack.image import userdeps

LOCKED = {"apache-airflow": "3.3.2", "pendulum": "3.3.0", "sqlalchemy": "2.0.44"}


def write(tmp_path: Path, text: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_new_libraries_and_compatible_pins_of_locked_packages_are_kept(tmp_path: Path):
    path = write(
        tmp_path, "# mine\npyjokes==0.8.3  # jokes\n\nPendulum>=3\n--extra-index-url https://pypi.example.com\n"
    )
    assert userdeps.check_requirements(path, LOCKED) == [
        "pyjokes==0.8.3",
        "Pendulum>=3",
        "--extra-index-url https://pypi.example.com",
    ]


def test_a_pin_that_changes_a_locked_package_names_the_wanted_and_the_locked_version(tmp_path: Path):
    path = write(tmp_path, "pyjokes\napache-airflow==3.2.0\nSQLAlchemy<2\n")
    with pytest.raises(userdeps.Refused) as refused:
        userdeps.check_requirements(path, LOCKED)
    message = str(refused.value)
    assert "txt:2: apache-airflow==3.2.0 would change apache-airflow: wanted ==3.2.0, locked 3.3.2" in message
    assert "requirements.txt:3: SQLAlchemy<2 would change sqlalchemy: wanted <2, locked 2.0.44" in message
    assert "fix:" in message


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("-e ./mylib", "only --index-url"),
        ("-r other.txt", "only --index-url"),
        ("mylib @ https://example.com/mylib.whl", "comes from a URL"),
        ("not a requirement!", "is not a requirement"),
    ],
)
def test_lines_the_build_cannot_honour_are_refused_with_their_line(tmp_path: Path, line: str, reason: str):
    with pytest.raises(userdeps.Refused, match=reason) as refused:
        userdeps.check_requirements(write(tmp_path, f"pyjokes\n{line}\n"), LOCKED)
    assert "requirements.txt:2:" in str(refused.value)


def test_a_deeper_conflict_names_the_locked_versions_of_the_packages_uv_names():
    uv_says = (
        "Because mylib==1.0 depends on sqlalchemy>=2.1 and you require sqlalchemy==2.0.44, "
        "we can conclude that mylib==1.0 cannot be used."
    )
    assert userdeps.explain(uv_says, LOCKED) == "sqlalchemy 2.0.44"


def test_debian_packages_are_names_and_nothing_else(tmp_path: Path):
    path = write(tmp_path, "# runtime\nlibgomp1\nfortune-mod=1:1.99.1-7.3\n", "packages.txt")
    assert userdeps.debian_packages(path) == ["libgomp1", "fortune-mod=1:1.99.1-7.3"]
    with pytest.raises(userdeps.Refused, match=r"packages.txt:1: '\$\(curl' is not a Debian package name"):
        userdeps.debian_packages(write(tmp_path, "$(curl evil)\n", "packages.txt"))
