"""The Airflow plugin the image installs (entry point `airflow.plugins`): mounts the fingerprint
endpoint (airflow_stack.apiserver.fingerprint_api) on the api-server at /airflow-stack, and there
makes task logs come from the shared log folder alone when the log servers are off
(airflow_stack.apiserver.sharedlogs).

Every process that loads plugins (task processes do, for their listeners) imports this module,
so it stays light: the FastAPI app is imported only when the api-server asks for `fastapi_apps`.
Building it on import cost about 0.15 s of CPU in each of them (FastAPI's route models import
pydantic.v1).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_stack.core.errors import log


class _ApiServerApps:
    """`fastapi_apps`, built on first read (the api-server); never read by tasks."""

    def __get__(self, instance, owner) -> list[dict]:
        from airflow_stack.apiserver import fingerprint_api, sharedlogs

        if said := sharedlogs.install():
            log(said)
        return [{"app": fingerprint_api.app, "url_prefix": fingerprint_api.URL_PREFIX, "name": "airflow-stack"}]


class AirflowStackPlugin(AirflowPlugin):
    name = "airflow_stack"
    fastapi_apps = _ApiServerApps()
