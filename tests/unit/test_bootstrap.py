"""The bootstrap file: references, validation with line numbers, nothing half-read."""

from pathlib import Path

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.jobs import bootstrap

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return path


def refusal(path, env=None) -> str:
    with pytest.raises(StackError) as caught:
        bootstrap.load(path, env or {})
    assert caught.value.setting == bootstrap.FILE_SETTING
    assert "nothing was applied" in caught.value.problem
    return caught.value.problem


def test_the_shipped_file_is_valid_without_any_environment():
    spec = bootstrap.load(ROOT / "config" / "connections.yaml", {})
    assert set(spec.connections) == {"aws_default", "s3_Airflow_Logs"}
    assert spec.connections["s3_Airflow_Logs"].conn_type == "aws"
    assert spec.connections["s3_Airflow_Logs"].login == ""


def test_references_resolve_from_environment_defaults_and_files(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    path = write(
        tmp_path,
        f"""
connections:
  api:
    conn_type: http
    host: ${{API_HOST}}
    port: 8443
    password: ${{file:{secret}}}
    extra: {{region: "${{REGION:-eu-west-1}}", retries: 3}}
variables:
  environment: ${{ENVIRONMENT:-local}}
  limits: {{max: 5}}
pools:
  etl: {{slots: 4, description: ETL jobs}}
""",
    )
    spec = bootstrap.load(path, {"API_HOST": "api.internal"})
    api = spec.connections["api"]
    assert (api.host, api.port, api.password) == ("api.internal", 8443, "from-a-file")
    assert api.extra == {"region": "eu-west-1", "retries": 3}
    assert spec.variables == {"environment": "local", "limits": {"max": 5}}
    assert spec.pools["etl"].slots == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "connections:\n  a:\n    conn_type: http\n   host: [unclosed\n", ":4: YAML syntax:", id="syntax error"
        ),
        pytest.param(
            "connections:\n  api:\n    conn_type: http\n    hostname: x\n",
            ":4: connections.api.hostname: Extra inputs are not permitted",
            id="unknown field",
        ),
        pytest.param("pools:\n  etl:\n    slots: many\n", ":3: pools.etl.slots:", id="wrong type"),
        pytest.param(
            "connections:\n  db:\n    conn_type: postgres\n    password: ${DB_PASSWORD}\n",
            ":4: connections.db.password: environment variable DB_PASSWORD is not set",
            id="missing environment variable",
        ),
    ],
)
def test_a_bad_input_is_named_with_its_line_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    assert f"{path}{expected}" in refusal(path)


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "connections:\n  a:\n    host: x\n  b:\n    conn_type: http\n    port: ${NOPE}\n")
    message = refusal(path)
    assert "3 problem(s)" in message
    assert "connections.a.conn_type: Field required" in message
    assert "NOPE is not set" in message


def test_unreadable_secret_file_is_named(tmp_path):
    path = write(tmp_path, "connections:\n  a:\n    conn_type: http\n    password: ${file:/nonexistent/secret}\n")
    assert "cannot read /nonexistent/secret" in refusal(path)


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "variables:\n  x: !!python/object/apply:os.system ['true']\n")
    assert "unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system" in refusal(path)


def test_missing_file_names_the_setting(tmp_path):
    with pytest.raises(StackError) as caught:
        bootstrap.load(tmp_path / "absent.yaml", {})
    assert caught.value.setting == bootstrap.FILE_SETTING


def test_secret_values_never_appear_in_the_refusal(tmp_path):
    path = write(tmp_path, "connections:\n  a:\n    conn_type: http\n    password: ${PW}\n    port: nope\n")
    message = refusal(path, {"PW": "Sup3r-secret-value"})
    assert "Sup3r-secret-value" not in message


def test_exported_secrets_become_environment_variable_names():
    assert bootstrap.reference_name("my-db.prod", "password") == "MY_DB_PROD_PASSWORD"
    assert bootstrap.reference_name("variable", "api key") == "VARIABLE_API_KEY"
    assert bootstrap.reference_name("1conn", "password") == "_1CONN_PASSWORD"
    assert bootstrap._REFERENCE.fullmatch(f"${{{bootstrap.reference_name('1conn', 'password')}}}")


def test_the_content_itself_reads_as_the_file_and_is_bounded_the_same_way():
    """On ECS the file arrives as AIRFLOW_STACK_BOOTSTRAP_CONTENT (a Secrets Manager secret)."""
    shipped = ROOT / "config" / "connections.yaml"
    from_content = bootstrap.load(Path("AIRFLOW_STACK_BOOTSTRAP_CONTENT"), {}, shipped.read_bytes())
    assert repr(from_content) == repr(bootstrap.load(shipped, {}))
    assert bootstrap.load(Path("AIRFLOW_STACK_BOOTSTRAP_CONTENT"), {}, b"{}\n").connections == {}
    with pytest.raises(StackError) as caught:
        bootstrap.load(Path("AIRFLOW_STACK_BOOTSTRAP_CONTENT"), {}, b"x: 1\n" * bootstrap.MAX_FILE_BYTES)
    assert "AIRFLOW_STACK_BOOTSTRAP_CONTENT" in caught.value.problem and "KiB" in caught.value.problem


def test_the_aws_example_environments_file_is_valid_without_any_environment():
    spec = bootstrap.load(ROOT / "deploy" / "aws" / "environments" / "example" / "connections.yaml", {})
    assert "s3_Airflow_Logs" in spec.connections
