"""core.sharedheap's refusals, in the host's Python: an interpreter whose reference-count layout
it does not know (this one, or a free-threaded build) is left alone, with the reason, and the
switch turns it off. Its effect is tested in the image's Python (tests/e2e/test_shared_heap.py)."""

from __future__ import annotations

import sys

import pytest

from airflow_stack.core import sharedheap


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("AIRFLOW_STACK_SHARED_HEAP", "false")
    assert sharedheap.immortalize() == "shared heap: off (AIRFLOW_STACK_SHARED_HEAP=false)"


def test_an_unknown_python_is_left_alone_with_the_reason(monkeypatch):
    monkeypatch.delenv("AIRFLOW_STACK_SHARED_HEAP", raising=False)
    monkeypatch.setattr(sys, "version_info", (3, 99, 0, "final", 0))
    probe = object()
    count = sys.getrefcount(probe)
    message = sharedheap.immortalize()
    assert message.startswith("shared heap: off, Python 3.99 is not one whose count layout this knows"), message
    assert sys.getrefcount(probe) == count  # nothing was written


def test_a_free_threaded_build_is_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 13, 0, "final", 0))
    monkeypatch.setattr(sharedheap.sysconfig, "get_config_var", lambda name: 1 if name == "Py_GIL_DISABLED" else None)
    assert sharedheap.supported() == "this is a free-threaded build, whose counts are stored differently"


@pytest.mark.skipif(sys.version_info[:2] in sharedheap._IMMORTAL, reason="this Python is one it supports")
def test_this_python_is_refused_unless_its_layout_is_known():
    assert "is not one whose count layout this knows" in sharedheap.supported()
