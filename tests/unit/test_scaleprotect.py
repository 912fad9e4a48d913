"""Scale-in protection against a fake ECS agent (pytest-httpserver on 127.0.0.1): the calls
it makes as a worker goes busy, stays busy past the renewal point, and goes idle; failures."""

from __future__ import annotations

import json

from werkzeug import Request, Response

from airflow_stack.worker.scaleprotect import AgentClient, ProtectionError, Protector, start

PATH = "/task-protection/v1/state"


class FakeAgent:
    def __init__(self, httpserver):
        self.calls: list[dict] = []
        self.fail = False
        httpserver.expect_request(PATH, method="PUT").respond_with_handler(self.handle)
        self.uri = httpserver.url_for("/").rstrip("/")

    def handle(self, request: Request) -> Response:
        body = json.loads(request.data)
        self.calls.append(body)
        if self.fail:
            return Response(json.dumps({"failure": {"Reason": "TASK_NOT_FOUND"}}), content_type="application/json")
        protection = {"ProtectionEnabled": body["ProtectionEnabled"], "TaskArn": "arn:aws:ecs:task/x"}
        return Response(json.dumps({"protection": protection}), content_type="application/json")


def test_protection_follows_the_tasks_held_and_is_renewed(httpserver):
    agent = FakeAgent(httpserver)
    held = [0]
    protector = Protector(AgentClient(agent.uri), lambda: held[0], minutes=60)
    assert protector.check(now=0) == "scale-in protection: off (idle)"
    assert protector.check(now=5) is None  # idle stays idle: no call
    held[0] = 3
    assert "on for 60 min (3 task(s) held)" in protector.check(now=10)
    assert protector.check(now=15) is None
    assert "renewed for 60 min" in protector.check(now=10 + 30 * 60)  # half the expiry
    held[0] = 0
    assert protector.check(now=2000) == "scale-in protection: off (idle)"
    assert agent.calls == [
        {"ProtectionEnabled": False},
        {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
        {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
        {"ProtectionEnabled": False},
    ]


def test_a_failed_call_is_reported_and_retried_at_the_next_check(httpserver):
    agent = FakeAgent(httpserver)
    agent.fail = True
    protector = Protector(AgentClient(agent.uri), lambda: 1, minutes=10)
    assert "could not turn it on" in protector.check(now=0) and "TASK_NOT_FOUND" in protector.check(now=1)
    agent.fail = False
    assert "on for 10 min" in protector.check(now=2)
    assert len(agent.calls) == 3


def test_an_unreachable_agent_raises_with_the_url(unused_port):
    client = AgentClient(f"http://127.0.0.1:{unused_port}", timeout=2)
    try:
        client.set(True, 5)
    except ProtectionError as exc:
        assert f"127.0.0.1:{unused_port}{PATH}" in str(exc)
    else:
        raise AssertionError("expected ProtectionError")


def test_outside_ecs_nothing_starts(monkeypatch, capsys):
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    assert start(lambda: 1) is None
    assert "not on ECS" in capsys.readouterr().err
