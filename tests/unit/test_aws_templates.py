"""The CloudFormation templates under deploy/aws/templates and the image's Dockerfile:
cfn-lint finds no error or warning, checkov no failed check (each skip written next to the
resource with its reason), and every parameter says what it is (a Description and a Type)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "deploy" / "aws" / "templates").glob("*.yaml"))
UV = shutil.which("uv") or str(ROOT / ".venv-tools" / "bin" / "uv")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_nothing(template: Path):
    matches = cfnlint_api.lint_file(template)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_parameter_has_a_description_and_a_type(template: Path):
    body, errors = decode(str(template))
    assert not errors, errors
    for name, parameter in body.get("Parameters", {}).items():
        assert parameter.get("Description"), f"{template.name}: parameter {name} has no Description"
        assert parameter.get("Type"), f"{template.name}: parameter {name} has no Type"


def test_there_are_templates():
    assert [p.name for p in TEMPLATES] == ["apps.yaml", "data.yaml", "network.yaml", "registry.yaml", "workers.yaml"]


def checkov(framework: str, *files: Path) -> list[dict]:
    """checkov's JSON reports (one per framework), from its own locked tool environment."""
    args = [f"--file={f}" for f in files]
    result = subprocess.run(
        [
            UV,
            "run",
            "--project",
            str(ROOT / "tools" / "checkov"),
            "--frozen",
            "--quiet",
            "checkov",
            f"--framework={framework}",
            "--skip-download",
            "--output=json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


@pytest.mark.parametrize(
    ("framework", "files"),
    [("cloudformation", TEMPLATES), ("dockerfile", [ROOT / "Dockerfile"])],
    ids=["templates", "Dockerfile"],
)
def test_checkov_fails_no_check_and_every_skip_says_why(framework: str, files: list[Path]):
    reports = checkov(framework, *files)
    results = [r["results"] for r in reports]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for r in results for c in r["failed_checks"]]
    assert failed == []
    assert sum(len(r["passed_checks"]) for r in results) > 50
    unexplained = [
        c["check_id"]
        for r in results
        for c in r["skipped_checks"]
        if not c.get("check_result", {}).get("suppress_comment")
    ]
    assert unexplained == []


@pytest.mark.parametrize(
    "template", [t for t in TEMPLATES if t.name in ("apps.yaml", "workers.yaml")], ids=lambda p: p.name
)
def test_every_service_rolls_back_a_failed_deployment(template: Path):
    body, _ = decode(str(template))
    services = {n: r for n, r in body["Resources"].items() if r["Type"] == "AWS::ECS::Service"}
    assert services
    for name, service in services.items():
        breaker = service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
        assert breaker == {"Enable": True, "Rollback": True}, name
