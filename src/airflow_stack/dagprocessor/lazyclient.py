"""The dag-processor builds its in-process execution API when a DAG file first needs it, not at
its first parse.

Airflow's DAG file processor manager answers what its parsing processes ask while they import a
DAG file or run its callbacks (a Variable or a Connection read at the file's top level, an XCom a
callback reads) through the task SDK's `Client`, talking to the execution API app run in the
manager's own process (`InProcessExecutionAPI`). The manager builds that client, and with it the
app, an ASGI-to-WSGI bridge and an event-loop thread, when it starts its first parsing process,
whether or not any DAG file ever asks anything: 12.5 MiB of the dag-processor's memory and 75
modules (143.8 to 156.3 MiB of anonymous memory in the dag-processor's container, in a process
that had imported the manager and the FAB security manager it uses to sync DAG permissions).

`install()`, called in the dag-processor's process before Airflow's command runs in it, has the
manager hand its parsing processes a stand-in that builds Airflow's own client (Airflow's code,
unchanged) the first time a parsing process asks for something, and delegates to it from then
on. A stack whose DAG files read nothing at parse time never builds it; one that does pays the
build (0.54 s of CPU in the dag-processor's container) at the first request instead of at the
first parse. That first request also builds the API's versioned routes (2.6 s there), as it did
before.

It relies on Airflow and attrs internals: the manager's `client` is a cached property of an attrs
class with slots, which attrs computes in the class's `__getattr__` from its own table of cached
properties. `incompatibilities()` lists what this Airflow lacks of them; then `install()` leaves
the manager alone and says so in the dag-processor's log.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from airflow_stack.core import pins

# The manager's cached property: Airflow's client over the in-process execution API.
CLIENT_LINES = ("Client(", "self._api_server.transport")
# Where the manager hands it to each parsing process.
CREATE_LINE = "client=self.client"
AIRFLOWS_OWN = "execution API in the dag-processor: built at the first parse (Airflow's own)"


class LazyClient:
    """Airflow's client for the in-process execution API, built by `build` on first use."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._client: Any = None

    @property
    def built(self) -> bool:
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        # Only for what this class does not define: every attribute of Airflow's client.
        if self._client is None:
            self._client = self._build()
        return getattr(self._client, name)


def _cached_properties(cls: Any) -> dict[str, Any] | None:
    """attrs' table of a slotted class's cached properties (name -> function), kept as the default
    of the `cached_properties` parameter of the `__getattr__` it generates; None without one."""
    getattr_ = cls.__dict__.get("__getattr__")
    if getattr_ is None:
        return None
    parameter = inspect.signature(getattr_).parameters.get("cached_properties")
    table = parameter.default if parameter is not None else None
    return table if isinstance(table, dict) else None


def incompatibilities() -> list[str]:
    """What this relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.dag_processing.manager import DagFileProcessorManager
        from airflow.dag_processing.processor import DagFileProcessorProcess
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    table = _cached_properties(DagFileProcessorManager)
    if table is None or "client" not in table:
        return ["DagFileProcessorManager.client is no longer an attrs cached property"]
    problems = pins.has_lines("DagFileProcessorManager.client", inspect.unwrap(table["client"]), CLIENT_LINES)
    problems += pins.has_lines(
        "DagFileProcessorManager._create_process", DagFileProcessorManager._create_process, (CREATE_LINE,)
    )
    start = inspect.signature(DagFileProcessorProcess.start).parameters
    if "client" not in start:
        problems.append("DagFileProcessorProcess.start no longer takes client")
    return problems


def lazy(build_client: Callable[[Any], Any]) -> Callable[[Any], LazyClient]:
    """The manager's `client`, as a stand-in that calls Airflow's `build_client` on first use."""

    def client(manager: Any) -> LazyClient:
        return LazyClient(lambda: build_client(manager))

    client.__wrapped__ = build_client
    return client


def install(env: Mapping[str, str] | None = None) -> str:
    """Defer the manager's client to its first use; returns what it did, for the dag-processor's log."""
    if problems := incompatibilities():
        return f"{AIRFLOWS_OWN}, this Airflow differs: {'; '.join(problems)}"
    from airflow.dag_processing.manager import DagFileProcessorManager

    table = _cached_properties(DagFileProcessorManager)
    if not hasattr(table["client"], "__wrapped__"):
        table["client"] = lazy(table["client"])
    return "execution API in the dag-processor: built when a DAG file or callback first asks it something"
