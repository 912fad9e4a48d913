"""Fingerprints: equal for equal secrets, different otherwise, never the secret itself."""

import pytest

from airflow_stack.checks import fingerprints
from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.host import envfile


def test_equal_secrets_equal_fingerprints_and_different_secrets_differ():
    a, b = "a" * 48, "b" * 48
    assert fingerprints.fingerprint(a) == fingerprints.fingerprint(a)
    assert fingerprints.fingerprint(a) != fingerprints.fingerprint(b)
    assert len(fingerprints.fingerprint(a)) == 16


def test_fingerprint_reveals_no_part_of_the_secret():
    secret = envfile.fernet_key()
    printed = fingerprints.fingerprint(secret)
    assert secret not in printed and printed not in secret
    assert not any(secret[i : i + 6] in printed for i in range(len(secret) - 6))


def test_the_first_fernet_key_of_a_rotation_list_counts():
    new, old = envfile.fernet_key(), envfile.fernet_key()
    env = {settings.FERNET_KEY.name: f"{new}, {old}"}
    assert fingerprints.of_environment(env) == {"fernet_key": fingerprints.fingerprint(new)}


def test_secrets_given_as_cmd_are_not_fingerprinted():
    env = {settings.JWT_SECRET.name + "_CMD": "cat /run/secrets/jwt"}
    assert fingerprints.of_environment(env) == {}


def test_compare_names_the_differing_secret_and_shows_only_fingerprints():
    secret_mine, secret_theirs = "m" * 40, "t" * 40
    mine = fingerprints.of_values({"jwt_secret": secret_mine, "secret_key": "s" * 40})
    theirs = fingerprints.of_values({"jwt_secret": secret_theirs, "secret_key": "s" * 40})
    with pytest.raises(StackError) as refusal:
        fingerprints.compare(mine, theirs, "the api-server's", fix="same value everywhere")
    text = refusal.value.render()
    assert "AIRFLOW__API_AUTH__JWT_SECRET differs from the api-server's" in text
    assert "AIRFLOW__API__SECRET_KEY" not in refusal.value.problem.split(" differs")[0]
    assert secret_mine not in text and secret_theirs not in text
    assert mine["jwt_secret"] in text and theirs["jwt_secret"] in text


def test_compare_passes_when_equal_or_absent_on_one_side():
    mine = fingerprints.of_values({"jwt_secret": "x" * 40, "fernet_key": envfile.fernet_key()})
    fingerprints.compare(mine, {"jwt_secret": mine["jwt_secret"]}, "ref", fix="")
