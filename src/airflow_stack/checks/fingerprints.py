"""Fingerprints of the secrets every component must share, and how two sets are compared.

A fingerprint is HMAC-SHA256 keyed with the secret over a fixed label, cut to 16 hex digits:
equal secrets give equal fingerprints, and nothing about the secret can be learnt from it
(the secrets are at least 32 random characters). Logs and errors show fingerprints, never
values. For the fernet key, the first key of a rotation list counts: it is the one that
encrypts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.core.settings import Setting

_LABEL = b"airflow-stack secret fingerprint v1"

SHARED: dict[str, Setting] = {
    "fernet_key": settings.FERNET_KEY,
    "jwt_secret": settings.JWT_SECRET,
    "secret_key": settings.API_SECRET_KEY,
}


def fingerprint(secret: str) -> str:
    return hmac.new(secret.encode(), _LABEL, hashlib.sha256).hexdigest()[:16]


def fernet_keys(value: str) -> list[str]:
    return [key.strip() for key in value.split(",") if key.strip()]


def of_values(values: Mapping[str, str | None]) -> dict[str, str]:
    """Fingerprints of the shared secrets given as {name: value}; absent values are skipped."""
    result = {}
    for name, value in values.items():
        if value:
            result[name] = fingerprint(fernet_keys(value)[0] if name == "fernet_key" else value)
    return result


def of_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Fingerprints of the shared secrets set as plain values (`_CMD`/`_SECRET` forms are skipped)."""
    return of_values({name: setting.raw(env) for name, setting in SHARED.items()})


def describe(fingerprints: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(fingerprints.items()))


def compare(mine: Mapping[str, str], reference: Mapping[str, str], reference_name: str, fix: str) -> None:
    """Refuse when a secret this component has differs from the reference's."""
    differing = [name for name in SHARED if name in mine and name in reference and mine[name] != reference[name]]
    if not differing:
        return
    names = ", ".join(SHARED[name].name for name in differing)
    details = "; ".join(f"{n}: this container {mine[n]}, {reference_name} {reference[n]}" for n in differing)
    raise StackError(
        f"{names} differs from {reference_name} (fingerprints: {details})",
        setting=", ".join(SHARED[name].ini for name in differing),
        fix=fix,
    )
