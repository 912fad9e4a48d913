"""The worker's background checks: they survive an error in a check and stop when it is done."""

from __future__ import annotations

import threading

from airflow_stack.worker import periodic


def test_a_check_that_raises_is_reported_and_run_again_until_done(capsys):
    calls = []
    finished = threading.Event()

    def check() -> str | None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("agent said no")
        if len(calls) == 3:
            finished.set()
        return f"checked {len(calls)}"

    thread = periodic.start("scale-in protection", 0.01, check, done=finished.is_set)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the loop did not end once the check was done"
    assert thread.name == "scale-in-protection" and thread.daemon
    err = capsys.readouterr().err
    assert "scale-in protection: unexpected RuntimeError('agent said no'); retrying at the next check" in err
    assert "checked 2" in err and "checked 3" in err
    assert len(calls) == 3
