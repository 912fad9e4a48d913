"""The dag-processor's execution API client built on first use (dagprocessor.lazyclient), with a
stand-in for Airflow's manager: an attrs class with slots and a cached `client`, as Airflow's is.
The real internals it wraps are checked in the image by tests/e2e/test_stack.py."""

from __future__ import annotations

import functools

import attrs

from airflow_stack.dagprocessor import lazyclient


class Client:
    def __init__(self):
        self.variables = "variables operations"


@attrs.define
class Manager:
    """Airflow's DagFileProcessorManager as far as its client goes."""

    builds: list = attrs.field(factory=list)

    @functools.cached_property
    def client(self) -> Client:
        self.builds.append("built")
        return Client()


def test_attrs_keeps_a_slotted_class_s_cached_properties_where_install_looks():
    table = lazyclient._cached_properties(Manager)
    assert table is not None and set(table) == {"client"}
    assert lazyclient._cached_properties(Client) is None  # a plain class has no such table


def test_the_client_is_built_on_first_use_once_and_then_delegated_to():
    table = lazyclient._cached_properties(Manager)
    original = table["client"]
    table["client"] = lazyclient.lazy(original)
    try:
        manager = Manager()
        client = manager.client
        assert manager.client is client  # still cached by the manager
        assert isinstance(client, lazyclient.LazyClient) and not client.built and manager.builds == []
        assert client.variables == "variables operations"  # what a parsing process's request reads
        assert client.built and manager.builds == ["built"]
        assert client.variables == "variables operations" and manager.builds == ["built"]
    finally:
        table["client"] = original
    assert isinstance(Manager().client, Client)


def test_an_airflow_without_the_internals_is_left_alone():
    # No Airflow in the unit-test environment: what it would wrap is missing.
    assert lazyclient.incompatibilities()[0].startswith("cannot import what it wraps")
    message = lazyclient.install({})
    assert message.startswith("execution API in the dag-processor: built at the first parse (Airflow's own)")
