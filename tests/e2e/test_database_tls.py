"""The metadata database over TLS with the server's certificate verified, as the ECS services
connect to RDS (sslmode=verify-full, sslrootcert): the real compose file's postgres with a
certificate from a test CA, and its db-migrate run as a one-off with such a URL.

- the right CA and the certificate's host name: the migration runs through Airflow's own engine;
- a host name not in the certificate, or another CA: refused at once with the reason and the fix,
  not retried until the wait times out;
- the CA file missing from the container (an image built without `make -C deploy/aws rds-ca`):
  refused before any connection, naming the file and the fix.

Runs its own compose project (postgres and db-migrate only), not the session's stack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from airflow_stack.host import envfile
from tests.certificates import certificate, new_key, pem

from .conftest import ROOT

PROJECT = "airflow-stack-e2e-tls"
HOST = "db.example.internal"  # the name in the server's certificate
OTHER_HOST = "db-alias"  # reaches the same server, not in its certificate
RDS_BUNDLE = "/opt/airflow-stack/rds-ca/global-bundle.pem"  # the templates' sslrootcert


def write_certificates(folder: Path) -> None:
    """ca.pem signed server.crt (for HOST); other-ca.pem signed nothing here."""
    folder.mkdir(mode=0o755)
    ca_key, server_key, other_key = (new_key() for _ in range(3))
    ca = certificate("airflow-stack test CA", ca_key)
    server = certificate(HOST, server_key, issuer=(ca.subject, ca_key), dns=HOST)
    files = {
        "ca.pem": pem(ca),
        "other-ca.pem": pem(certificate("another CA", other_key)),
        "server.crt": pem(server),
        "server.key": server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
        (folder / name).chmod(0o644)  # the key is copied and locked down inside the container


class TlsDatabase:
    """The compose file's postgres with TLS on (an override) and its db-migrate as a one-off."""

    def __init__(self, workdir: Path):
        self.tls = workdir / "tls"
        write_certificates(self.tls)
        env_file, override = workdir / ".env", workdir / "tls.yml"
        uid = envfile.container_uid()
        envfile.write_env_file(env_file, uid)
        logs, options = workdir / "logs", workdir / "airflow.env"
        envfile.prepare_dir(logs, uid)
        options.touch()
        for key, value in {"AIRFLOW_LOGS_DIR": str(logs), "AIRFLOW_ENV_FILE": str(options)}.items():
            envfile.set_env_value(env_file, key, value)
        self.password = envfile.read_env_file(env_file)["POSTGRES_PASSWORD"]
        override.write_text(
            "services:\n"
            "  postgres:\n"
            '    command: ["sh", "-c", "cp /tls/server.crt /tls/server.key /tmp/ && chmod 600 /tmp/server.key'
            " && exec docker-entrypoint.sh postgres -c ssl=on -c ssl_cert_file=/tmp/server.crt"
            ' -c ssl_key_file=/tmp/server.key"]\n'
            f"    volumes: ['{self.tls}:/tls:ro']\n"
            f"    networks: {{default: {{aliases: [{HOST}, {OTHER_HOST}]}}}}\n"
        )
        self.compose = ["docker", "compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                        "-f", str(override), "--env-file", str(env_file), "-p", PROJECT]  # fmt: skip

    def compose_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self.compose, *args], capture_output=True, text=True, timeout=timeout)

    def migrate(self, host: str, ca: str, *mounts: str) -> subprocess.CompletedProcess:
        """db-migrate with a verifying URL to `host`, trusting the file `ca` (inside the container)."""
        url = f"postgresql+psycopg2://airflow:{self.password}@{host}:5432/airflow?sslmode=verify-full&sslrootcert={ca}"
        volumes = [a for mount in (f"{self.tls}:/tls:ro", *mounts) for a in ("-v", mount)]
        return self.compose_run(
            "run", "--rm", *volumes, "-e", f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN={url}",
            "-e", "AIRFLOW_STACK_WAIT_TIMEOUT=60", "db-migrate",
        )  # fmt: skip

    def logs(self) -> str:
        return self.compose_run("logs", "--no-color", "--tail", "100", "postgres").stdout


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Iterator[TlsDatabase]:
    db = TlsDatabase(tmp_path_factory.mktemp("tls"))
    db.compose_run("down", "-v", "--remove-orphans")
    yield db
    db.compose_run("down", "-v", "--remove-orphans")


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_the_certificate_verified_against_its_ca_and_host_name_lets_the_migration_run(database: TlsDatabase):
    result = database.migrate(HOST, "/tls/ca.pem")
    assert result.returncode == 0, output(result) + database.logs()
    assert f"PostgreSQL at {HOST}:5432 is ready" in result.stderr, output(result)
    tables = database.compose_run(
        "exec", "-T", "postgres", "psql", "-U", "airflow", "-d", "airflow", "-tAc",
        "SELECT count(*) FROM alembic_version",
    )  # fmt: skip
    assert tables.stdout.strip() == "1", output(tables)


def test_a_host_name_not_in_the_certificate_is_refused_at_once_with_the_fix(database: TlsDatabase):
    result = database.migrate(OTHER_HOST, "/tls/ca.pem")
    assert result.returncode != 0
    assert f"PostgreSQL at {OTHER_HOST}:5432 refused the connection" in result.stderr, output(result)
    assert "does not match host name" in result.stderr, output(result)
    assert "did not verify" in result.stderr and "the name in the certificate" in result.stderr
    assert database.password not in output(result)


def test_a_certificate_another_ca_signed_is_refused_at_once(database: TlsDatabase):
    result = database.migrate(HOST, "/tls/other-ca.pem")
    assert result.returncode != 0
    assert f"PostgreSQL at {HOST}:5432 refused the connection" in result.stderr, output(result)
    assert "certificate verify failed" in result.stderr, output(result)


def test_the_aws_url_without_the_rds_bundle_in_the_image_is_refused_naming_the_fix(database: TlsDatabase, tmp_path):
    empty = tmp_path / "rds-ca"
    empty.mkdir(mode=0o755)  # as in an image built without `make -C deploy/aws rds-ca`
    result = database.migrate(HOST, RDS_BUNDLE, f"{empty}:/opt/airflow-stack/rds-ca:ro")
    assert result.returncode != 0
    assert f"the CA file {RDS_BUNDLE} does not exist in this container" in result.stderr, output(result)
    assert "make -C deploy/aws rds-ca" in result.stderr
    assert "is ready" not in result.stderr  # refused before any connection
