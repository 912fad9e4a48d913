"""The CloudFormation templates under deploy/aws/templates: cfn-lint finds no error or warning,
and every parameter says what it is (a Description and a Type), as the Turbine project checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode import decode

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "aws" / "templates").glob("*.yaml"))


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
    assert [p.name for p in TEMPLATES] == ["data.yaml"]
