"""The ECS services verify RDS's certificate: the templates ask for sslmode=verify-full with the CA
file the image holds, `make -C deploy/aws rds-ca` fetches only a real bundle, and a component whose
verifying URL names a missing CA file refuses to start, naming the fix. (The verification itself,
against a PostgreSQL with a certificate, is tests/e2e/test_database_tls.py.)"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
from cfnlint.decode import decode

from airflow_stack.checks import preflight, waiting
from airflow_stack.core import components, settings
from airflow_stack.core.errors import StackError
from airflow_stack.host import rdsca
from tests.certificates import ca_pem

ROOT = Path(__file__).resolve().parents[2]
APPS, _ = decode(str(ROOT / "deploy" / "aws" / "templates" / "apps.yaml"))


def database_urls() -> list[str]:
    found = []
    for resource in APPS["Resources"].values():
        for container in resource.get("Properties", {}).get("ContainerDefinitions", []):
            for variable in container.get("Environment", []):
                if variable["Name"] == settings.SQL_ALCHEMY_CONN.name:
                    found.append(variable["Value"]["Fn::Sub"])
    return found


def test_every_service_verifies_rds_with_the_bundle_the_image_holds():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied_to = re.search(r"^COPY deploy/aws/rds-ca/ (\S+)$", dockerfile, re.M).group(1)
    makefile = (ROOT / "deploy" / "aws" / "Makefile").read_text()
    written = re.search(r"^RDS_CA_BUNDLE := rds-ca/(\S+)$", makefile, re.M).group(1)
    checked = re.search(r"^RDS_CA_IN_IMAGE := (\S+)$", makefile, re.M).group(1)
    in_image = copied_to + written
    assert checked == in_image
    urls = database_urls()
    assert len(urls) >= 7  # every Airflow component of the apps stack
    for url in urls:
        query = parse_qs(urlsplit(url).query)
        assert query == {"sslmode": ["verify-full"], "sslrootcert": [in_image]}, url


def test_a_bundle_of_ca_certificates_is_accepted_and_written_with_nothing_else(tmp_path, monkeypatch):
    bundle = "\n".join([ca_pem("one"), ca_pem("two")])
    monkeypatch.setattr(rdsca, "fetch", lambda url: "\n" + bundle + "\n\n")
    out = tmp_path / "rds-ca" / "global-bundle.pem"
    assert rdsca.write_bundle(out) == 2
    assert out.read_text().count("BEGIN CERTIFICATE") == 2
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "body, problem",
    [
        ("<html><body>Proxy login required</body></html>", "is not a list of PEM certificates"),
        (ca_pem() + "\n<html>error</html>\n", "found 1 certificate(s) and other text"),
        ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", "does not load"),
    ],
)
def test_anything_but_certificates_is_refused_and_the_old_bundle_kept(tmp_path, monkeypatch, body, problem):
    out = tmp_path / "global-bundle.pem"
    out.write_text("the bundle from before\n")
    monkeypatch.setattr(rdsca, "fetch", lambda url: body)
    with pytest.raises(StackError) as refused:
        rdsca.write_bundle(out)
    assert problem in refused.value.problem
    assert refused.value.setting == "RDS_CA_URL"
    assert out.read_text() == "the bundle from before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["global-bundle.pem"]


def test_the_download_is_https_only_and_bounded(monkeypatch):
    with pytest.raises(StackError, match="not an https:// URL"):
        rdsca.fetch("http://truststore.example/global-bundle.pem")

    class Endless(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(rdsca.urllib.request, "urlopen", lambda url, timeout: Endless(b"A" * (rdsca.MAX_BYTES + 10)))
    with pytest.raises(StackError, match="sent more than 2 MiB"):
        rdsca.fetch("https://truststore.example/global-bundle.pem")


def environment(url: str) -> dict[str, str]:
    return {settings.SQL_ALCHEMY_CONN.name: url}


def test_a_verifying_url_whose_ca_file_is_missing_refuses_naming_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "global-bundle.pem"
    url = f"postgresql+psycopg2://airflow@db.example:5432/airflow?sslmode=verify-full&sslrootcert={missing}"
    with pytest.raises(StackError) as refused:
        preflight.check_database_ca(components.get("scheduler"), environment(url))
    assert str(missing) in refused.value.problem and "does not exist" in refused.value.problem
    assert refused.value.setting == settings.SQL_ALCHEMY_CONN.name
    assert "make -C deploy/aws rds-ca" in refused.value.fix
    missing.write_text("")
    with pytest.raises(StackError, match="is empty"):
        preflight.check_database_ca(components.get("scheduler"), environment(url))


@pytest.mark.parametrize(
    "query",
    ["sslmode=require", "sslmode=verify-full&sslrootcert=system", "sslmode=verify-ca&sslrootcert={bundle}", ""],
)
def test_a_present_ca_file_or_no_verification_passes(tmp_path, query):
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text(ca_pem())
    url = "postgresql+psycopg2://airflow@db.example:5432/airflow?" + query.format(bundle=bundle)
    preflight.check_database_ca(components.get("scheduler"), environment(url))


def test_a_certificate_the_ca_does_not_sign_is_refused_at_once_with_its_fix(monkeypatch):
    attempts = []

    def refuse(dsn, connect_timeout):
        attempts.append(dsn)
        raise psycopg2.OperationalError(
            'connection to server at "10.1.2.3", port 5432 failed: SSL error: certificate verify failed\n'
        )

    monkeypatch.setattr(psycopg2, "connect", refuse)
    url = "postgresql+psycopg2://airflow:pw@db.example:5432/airflow?sslmode=verify-full&sslrootcert=/ca.pem"
    started = time.monotonic()
    with pytest.raises(StackError) as refused:
        waiting.wait_for_postgres(url, settings.SQL_ALCHEMY_CONN.name, timeout=30)
    assert time.monotonic() - started < 5
    assert attempts == ["postgresql://airflow:pw@db.example:5432/airflow?sslmode=verify-full&sslrootcert=/ca.pem"]
    assert "certificate verify failed" in refused.value.problem
    assert "did not verify" in refused.value.fix and "sslrootcert" in refused.value.fix
