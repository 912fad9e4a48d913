"""The api-server's fingerprint endpoint: GET /airflow-stack/fingerprints returns the
fingerprints of the fernet key, the JWT secret and the API secret key, as Airflow resolved them
(any source, `_CMD` and `_SECRET` included). Workers, which have no metadata DB in production,
compare theirs with it before they take tasks. Fingerprints reveal nothing about the secrets
(see fingerprints). Mounted by the plugin (airflow_stack.apiserver.plugin).
"""

from __future__ import annotations

from fastapi import FastAPI

from airflow_stack.checks import fingerprints

URL_PREFIX = "/airflow-stack"

app = FastAPI(title="airflow-stack", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/fingerprints")
def get_fingerprints() -> dict[str, str]:
    from airflow.configuration import conf

    return fingerprints.of_values(
        {name: conf.get(setting.section, setting.key, fallback=None) for name, setting in fingerprints.SHARED.items()}
    )
