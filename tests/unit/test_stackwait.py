"""How a compose service's state reads as ready, waiting or failed."""

import pytest

from airflow_stack.host.stackwait import ServiceState


@pytest.mark.parametrize(
    ("state", "health", "exit_code", "one_shot", "expected"),
    [
        ("running", "healthy", 0, False, "ready"),
        ("running", "", 0, False, "ready"),
        ("running", "starting", 0, False, "starting"),
        ("running", "unhealthy", 0, False, "unhealthy"),
        ("exited", "", 1, False, "failed"),
        ("restarting", "", 1, False, "restarting"),
        ("exited", "", 0, True, "ready"),
        ("exited", "", 2, True, "failed"),
        ("running", "", 0, True, "running"),
    ],
)
def test_status(state, health, exit_code, one_shot, expected):
    assert ServiceState("s", state, health, exit_code).status(one_shot) == expected
