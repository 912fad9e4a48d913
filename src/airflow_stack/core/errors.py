"""How the entrypoint speaks: one-line progress on stderr, the one exception it raises for a
refusal, with how it is shown, and the links into the docs that refusals give.

Every refusal says what is wrong, which setting or file it concerns, and how to fix it.
"""

from __future__ import annotations

import sys


def docs(page_and_anchor: str) -> str:
    """A link into the repository's docs folder, e.g. `docs("secrets.md#rotating-secrets")`; a unit
    test checks that every such page and anchor exists."""
    return f"docs/{page_and_anchor}"


def log(message: str) -> None:
    print(f"airflow-stack: {message}", file=sys.stderr, flush=True)


class StackError(Exception):
    """A refusal to go on, with the setting it concerns and the fix."""

    def __init__(self, problem: str, *, setting: str | None = None, fix: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.setting = setting
        self.fix = fix

    def render(self) -> str:
        lines = [f"error: {self.problem}"]
        if self.setting:
            lines.append(f"       setting: {self.setting}")
        if self.fix:
            lines.append(f"       fix:     {self.fix}")
        return "\n".join(lines)
