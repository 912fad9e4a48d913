"""The in-image steps of `make rotate-fernet-key` (docs/secrets.md "Rotating secrets"):

    airflow-stack rotate-fernet-key record     the key list is "new,old": check that one of the
                                               old keys is the recorded one, record the new key
    airflow-stack rotate-fernet-key reencrypt  `airflow rotate-fernet-key`: re-encrypt every
                                               connection and variable with the new key

The host side (editing .env, restarting the components) is in the Makefile and host.envfile.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from airflow_stack.checks import fingerprints, preflight
from airflow_stack.core import components, metadb, settings
from airflow_stack.core.errors import StackError, log


def record(env: Mapping[str, str]) -> None:
    keys = fingerprints.fernet_keys(settings.FERNET_KEY.raw(env) or "")
    prints = [fingerprints.fingerprint(key) for key in keys]
    conn = metadb.connect(env)
    try:
        recorded = metadb.read_fingerprints(conn).get("fernet_key")
        if recorded == prints[0]:
            log(f"the new fernet key {prints[0]} is already the recorded one")
            return
        if recorded not in prints[1:]:
            raise StackError(
                f"none of the fernet keys ({', '.join(prints)}) is the recorded one ({recorded}): "
                "rotating would lose access to what the recorded key encrypted",
                setting=settings.FERNET_KEY.name,
                fix="set the key list to 'NEW_KEY,CURRENT_KEY' with the current key second",
            )
        metadb.write_fingerprints(conn, {"fernet_key": prints[0]})
        log(f"recorded the new fernet key {prints[0]} (was {recorded})")
    finally:
        conn.close()


def reencrypt() -> None:
    log("re-encrypting connections and variables with the first fernet key (airflow rotate-fernet-key)")
    if subprocess.run(["airflow", "rotate-fernet-key"]).returncode != 0:
        raise StackError(
            "`airflow rotate-fernet-key` failed (its output is above)",
            setting=settings.FERNET_KEY.name,
            fix="check that the key list is 'NEW_KEY,OLD_KEY' and that every old key is still in it",
        )
    log("re-encrypted")


def main(step: str, env: Mapping[str, str]) -> None:
    steps = {"record": lambda: record(env), "reencrypt": reencrypt}
    if step not in steps:
        raise StackError(f"unknown rotate-fernet-key step {step!r}", fix="use `record` or `reencrypt`")
    preflight.run(components.get("db-migrate"), env)
    steps[step]()
