"""The Airflow plugin the image installs (entry point `airflow.plugins`): mounts the fingerprint
endpoint (airflow_stack.apiserver.fingerprint_api) on the api-server at /airflow-stack.

Every process that loads plugins (task processes do, for their listeners) imports this module,
so it stays light: the FastAPI app is imported only when the api-server asks for `fastapi_apps`.
Building it on import cost about 0.15 s of CPU in each of them (FastAPI's route models import
pydantic.v1).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class _FingerprintApp:
    """`fastapi_apps`, built on first read (the api-server); never read by tasks."""

    def __get__(self, instance, owner) -> list[dict]:
        from airflow_stack.apiserver import fingerprint_api

        return [{"app": fingerprint_api.app, "url_prefix": fingerprint_api.URL_PREFIX, "name": "airflow-stack"}]


class AirflowStackPlugin(AirflowPlugin):
    name = "airflow_stack"
    fastapi_apps = _FingerprintApp()
