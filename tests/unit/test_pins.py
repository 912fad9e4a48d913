"""The checks on Airflow internals the worker's wrappers rely on (core.pins), against stand-ins;
against the image's Airflow: tests/e2e/test_dag_cache.py."""

from __future__ import annotations

import attrs

from airflow_stack.core import pins


@attrs.define
class Supervised:
    _exit_code: int | None = None
    selector: object = None

    def wait(self, max_wait_time, raise_on_timeout=False):
        self._last = max_wait_time  # a line the check looks for
        return None


def test_the_parameters_must_be_exactly_the_ones_relied_on():
    assert pins.takes("S.wait", Supervised.wait, ("self", "max_wait_time", "raise_on_timeout")) == []
    assert pins.takes("S.wait", Supervised.wait, ("self", "max_wait_time")) == ["S.wait no longer takes max_wait_time"]
    assert pins.takes("S.gone", None, ("self", "x")) == ["S.gone no longer takes x"]


def test_fields_are_read_from_the_attrs_class():
    assert pins.has_fields("S", Supervised, ("_exit_code", "selector")) == []
    assert pins.has_fields("S", Supervised, ("_exit_code", "_process", "_pid")) == ["S has no _process, _pid"]
    assert pins.has_fields("S", object, ("_exit_code",)) == ["S has no _exit_code"]


def test_source_lines_and_a_function_with_no_source_to_read():
    assert pins.has_lines("S.wait", Supervised.wait, ("self._last = max_wait_time",)) == []
    assert pins.has_lines("S.wait", Supervised.wait, ("self._other = 1",)) == ["S.wait no longer has `self._other = 1`"]
    assert pins.has_lines("len", len, ("x",)) == ["len no longer has `x`"]  # built in
    assert pins.has_lines("gone", None, ("x",)) == ["gone no longer has `x`"]
