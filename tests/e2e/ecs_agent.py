"""Stands in for what ECS serves inside a task (tests/e2e/test_ecs_worker.py), on :8000: the task
metadata endpoint v4 (`GET /v4/<id>/task`: the cluster and task ARN from CLUSTER and TASK_ARN)
and the agent's task protection endpoint (`PUT /task-protection/v1/state`, each state recorded).
`GET /protection` lists the states set, for the test."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATES: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def answer(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/v4/") and self.path.endswith("/task"):
            self.answer({"Cluster": os.environ["CLUSTER"], "TaskARN": os.environ["TASK_ARN"], "Containers": []})
        elif self.path == "/protection":
            self.answer(STATES)
        else:
            self.send_error(404)

    def do_PUT(self) -> None:
        if self.path != "/task-protection/v1/state":
            self.send_error(404)
            return
        state = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        STATES.append(state)
        self.answer(
            {"protection": {"ProtectionEnabled": state["ProtectionEnabled"], "TaskArn": os.environ["TASK_ARN"]}}
        )


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
