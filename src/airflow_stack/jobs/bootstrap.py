"""`airflow-stack bootstrap`: apply a declarative file of connections, variables and pools.

The file (AIRFLOW_STACK_BOOTSTRAP_FILE, default /opt/airflow/config/connections.yaml, or its
content itself in AIRFLOW_STACK_BOOTSTRAP_CONTENT, which ECS injects from a secret) is read
and validated entirely before anything is written: unknown fields, wrong types, missing
environment variables and unreadable secret files are reported together, each with its line
and field, and the database is left unchanged. Then everything is applied in one transaction
with Airflow's own models: missing objects are created, changed ones updated, equal ones and
objects the file does not name left alone. Secret values are never printed.

The file is treated as untrusted: it is read up to MAX_FILE_BYTES, YAML aliases and anchors
are refused before anything is built (no "billion laughs"), only plain YAML types are
accepted, and ids are checked against Airflow's own rules while loading. A database error
while applying is a refusal naming the object, with nothing applied.

String values may reference the environment and mounted files:
    ${NAME}            the variable NAME; an error when it is not set
    ${NAME:-default}   NAME, or `default` when NAME is unset or empty
    ${file:/path}      the content of a file (Docker/Compose/ECS secrets), stripped
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, docs, log

FILE_SETTING = settings.BOOTSTRAP_FILE.name
MAX_FILE_BYTES = 1024 * 1024
# Airflow's own limits (airflow.models: connection ids as sanitize_conn_id accepts them, ID_LEN
# for variable keys, the pool column's length), used when Airflow cannot be imported.
CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")
MAX_VARIABLE_KEY = 250
MAX_POOL_NAME = 256
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))
_REFERENCE = re.compile(r"\$\{(file:(?P<path>[^}]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?)\}")


# --- the file's schema ------------------------------------------------------------------


def _models():
    """The pydantic models, built on first use (pydantic is Airflow's dependency)."""
    from pydantic import BaseModel, ConfigDict, Field

    class ConnectionSpec(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)
        conn_type: str
        description: str | None = None
        host: str | None = None
        login: str | None = None
        password: str | None = None
        schema_: str | None = Field(default=None, alias="schema")
        port: int | None = None
        extra: dict[str, Any] = Field(default_factory=dict)

    class PoolSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        slots: int = Field(ge=-1)
        description: str | None = None
        include_deferred: bool = False

    class BootstrapSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        connections: dict[str, ConnectionSpec] = Field(default_factory=dict)
        variables: dict[str, str | int | float | bool | list | dict] = Field(default_factory=dict)
        pools: dict[str, PoolSpec] = Field(default_factory=dict)

    return BootstrapSpec


# --- reading: YAML with line numbers, references, validation ----------------------------


@dataclass
class Problems:
    path: Path
    items: list[str] = field(default_factory=list)

    def add(self, line: int | None, where: str, message: str) -> None:
        location = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{location}: {where}: {message}" if where else f"{location}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise StackError(
                f"{self.path} is not valid ({len(self.items)} problem(s)); nothing was applied:\n  "
                + "\n  ".join(self.items),
                setting=FILE_SETTING,
                fix=f"correct the file ({docs('connections.md#the-file')} shows the format) and run again",
            )


def _to_python(node, problems: Problems, env: Mapping[str, str], where: str = ""):
    """A YAML node as plain Python, resolving ${...} references in string scalars."""
    import yaml

    if node.tag not in _PLAIN_TAGS:
        problems.add(node.start_mark.line + 1, where, f"unsupported YAML tag {node.tag}")
        return None
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in result:
                problems.add(key_node.start_mark.line + 1, f"{where}.{key}".lstrip("."), "duplicate key")
            result[key] = _to_python(value_node, problems, env, f"{where}.{key}".lstrip("."))
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, problems, env, f"{where}[{i}]") for i, item in enumerate(node.value)]
    value = node.value if node.tag == "tag:yaml.org,2002:str" else _scalar(node, problems, where)
    if isinstance(value, str) and "${" in value:
        return _resolve(value, node.start_mark.line + 1, where, problems, env)
    return value


def _scalar(node, problems: Problems, where: str):
    """A non-string scalar (int, bool, null...), built by the safe constructor only."""
    import yaml

    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError as exc:
        problems.add(node.start_mark.line + 1, where, f"unsupported value: {getattr(exc, 'problem', exc)}")
        return None


def _resolve(text: str, line: int, where: str, problems: Problems, env: Mapping[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match["path"]:
            try:
                return Path(match["path"]).read_text().strip()
            except OSError as exc:
                problems.add(line, where, f"cannot read {match['path']} ({exc.strerror})")
                return ""
        value = env.get(match["name"])
        if match["default"] is not None:
            return value or match["default"]
        if value is None:
            problems.add(
                line,
                where,
                f"environment variable {match['name']} is not set (set it, or write ${{{match['name']}:-default}})",
            )
            return ""
        return value

    return _REFERENCE.sub(replace, text)


def _line_of(root, loc: tuple) -> int | None:
    """The line of the YAML node at pydantic's error location `loc`, or of its nearest parent."""
    import yaml

    node, line = root, root.start_mark.line + 1 if root else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                return line
            node, line = pair[1], pair[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load(path: Path, env: Mapping[str, str], content: bytes | None = None):
    """Read and validate the file (or `content`, named `path` in messages); raise one StackError
    listing every problem."""
    import yaml
    from pydantic import ValidationError

    problems = Problems(path)
    if content is not None:
        raw = content[: MAX_FILE_BYTES + 1]
    else:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise StackError(
                f"cannot read the bootstrap file {path} ({exc.strerror})",
                setting=FILE_SETTING,
                fix=f"mount the file there, or point {FILE_SETTING} at it",
            ) from None
    if len(raw) > MAX_FILE_BYTES:
        problems.add(None, "", f"the file is over {MAX_FILE_BYTES // 1024} KiB")
        problems.raise_if_any()
    text = raw.decode("utf-8", "replace")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                problems.add(
                    event.start_mark.line + 1,
                    "",
                    "YAML anchors and aliases (&name, *name) are not allowed: write the value out",
                )
                problems.raise_if_any()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.add(mark.line + 1 if mark else None, "", f"YAML syntax: {getattr(exc, 'problem', exc)}")
        problems.raise_if_any()
    data = {} if root is None else _to_python(root, problems, env)
    if not isinstance(data, dict):
        problems.add(1, "", "the file must be a mapping with connections, variables and/or pools")
        problems.raise_if_any()
    try:
        spec = _models().model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            problems.add(_line_of(root, loc), ".".join(str(p) for p in loc), error["msg"])
    problems.raise_if_any()
    check_ids(spec, root, problems)
    problems.raise_if_any()
    return spec


def _conn_id_is_valid(conn_id: str) -> bool:
    """Airflow's own rule (`sanitize_conn_id`) where Airflow is installed, else the same rule."""
    try:
        from airflow.models.connection import sanitize_conn_id
    except ImportError:
        return CONN_ID.match(conn_id) is not None
    return sanitize_conn_id(conn_id) == conn_id


def check_ids(spec, root, problems: Problems) -> None:
    """Ids Airflow would refuse on insert, reported at load time with their line."""
    for conn_id in spec.connections:
        if not _conn_id_is_valid(conn_id):
            problems.add(
                _line_of(root, ("connections", conn_id)), f"connections.{conn_id[:100]}",
                "Airflow refuses this connection id: 1-250 characters of letters, digits and # ! ( ) - . : / \\ _",
            )  # fmt: skip
    for kind, names, limit in (("variables", spec.variables, MAX_VARIABLE_KEY), ("pools", spec.pools, MAX_POOL_NAME)):
        for name in names:
            if not name or len(name) > limit:
                problems.add(_line_of(root, (kind, name)), f"{kind}.{name[:100]}", f"must be 1-{limit} characters")


# --- applying: Airflow's models, one transaction ----------------------------------------


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def record(self, kind: str, name: str, changed_fields: list[str] | None, is_new: bool) -> None:
        if is_new:
            self.created += 1
            self.lines.append(f"created {kind} {name}")
        elif changed_fields:
            self.updated += 1
            self.lines.append(f"updated {kind} {name} ({', '.join(changed_fields)})")
        else:
            self.unchanged += 1

    def summary(self) -> str:
        if not (self.created or self.updated):
            return f"nothing to change ({self.unchanged} unchanged)"
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def _apply_connection(session, conn_id: str, spec, report: Report) -> None:
    import json

    from airflow.models import Connection
    from sqlalchemy import select

    # An empty string means "not set", so optional values can be written as ${VAR:-}.
    wanted = {
        "conn_type": spec.conn_type,
        "description": spec.description or None,
        "host": spec.host or None,
        "login": spec.login or None,
        "password": spec.password or None,
        "schema": spec.schema_ or None,
        "port": spec.port,
    }
    extra = {key: value for key, value in spec.extra.items() if value != ""}
    existing = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
    is_new = existing is None
    conn = existing or Connection(conn_id=conn_id)
    changed = [name for name, value in wanted.items() if getattr(conn, name) != value]
    for name in changed:
        setattr(conn, name, wanted[name])
    current_extra = conn.extra_dejson if conn.extra else {}
    if current_extra != extra:
        conn.extra = json.dumps(extra) if extra else None
        changed.append("extra")
    if is_new:
        session.add(conn)
    report.record("connection", conn_id, changed, is_new)


def _apply_variable(session, key: str, value, report: Report) -> None:
    import json

    from airflow.models import Variable
    from sqlalchemy import select

    text = value if isinstance(value, str) else json.dumps(value)
    existing = session.scalar(select(Variable).where(Variable.key == key))
    if existing is None:
        session.add(Variable(key=key, val=text))
        report.record("variable", key, None, True)
    elif existing.val != text:
        existing.set_val(text)
        report.record("variable", key, ["value"], False)
    else:
        report.record("variable", key, [], False)


def _apply_pool(session, name: str, spec, report: Report) -> None:
    from airflow.models import Pool
    from sqlalchemy import select

    existing = session.scalar(select(Pool).where(Pool.pool == name))
    pool = existing or Pool(pool=name)
    wanted = {"slots": spec.slots, "description": spec.description, "include_deferred": spec.include_deferred}
    changed = [key for key, value in wanted.items() if getattr(pool, key) != value]
    for key in changed:
        setattr(pool, key, wanted[key])
    if existing is None:
        session.add(pool)
    report.record("pool", name, changed, existing is None)


def apply(spec) -> Report:
    from airflow.utils.session import create_session
    from sqlalchemy.exc import SQLAlchemyError

    report = Report()
    current = "the file's objects"
    # create_session commits at the end and rolls back on any exception: all or nothing.
    try:
        with create_session() as session:
            for conn_id, connection in spec.connections.items():
                current = f"connection {conn_id!r}"
                _apply_connection(session, conn_id, connection, report)
                session.flush()
            for key, value in spec.variables.items():
                current = f"variable {key!r}"
                _apply_variable(session, key, value, report)
                session.flush()
            for name, pool in spec.pools.items():
                current = f"pool {name!r}"
                _apply_pool(session, name, pool, report)
                session.flush()
            current = "the file's objects (at commit)"
    except (SQLAlchemyError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        raise StackError(
            f"the database refused {current}: {type(exc).__name__}: {reason}; nothing was applied",
            setting=FILE_SETTING,
            fix=f"correct {current} in the file ({docs('connections.md#the-file')}) and run again",
        ) from None
    return report


def run(env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    content = settings.BOOTSTRAP_CONTENT.raw(env)
    if content:
        path, spec = (
            Path(settings.BOOTSTRAP_CONTENT.name),
            load(Path(settings.BOOTSTRAP_CONTENT.name), env, content.encode()),
        )
    else:
        path = settings.BOOTSTRAP_FILE.read(env)
        spec = load(path, env)
    log(
        f"bootstrap: {path} is valid: {len(spec.connections)} connection(s), "
        f"{len(spec.variables)} variable(s), {len(spec.pools)} pool(s)"
    )
    report = apply(spec)
    for line in report.lines:
        log(f"bootstrap: {line}")
    log(f"bootstrap: {report.summary()}")


# --- export: the database's objects in the file's format ---------------------------------


def _hidden(name: str) -> bool:
    """Whether Airflow masks a value under this name (its secrets masker's own rule)."""
    try:
        from airflow._shared.secrets_masker.secrets_masker import should_hide_value_for_key
    except ImportError:  # pragma: no cover - outside the image
        return bool(re.search(r"password|passwd|secret|token|api_?key|private_key|access_key|passphrase", name, re.I))
    return bool(should_hide_value_for_key(name))


def reference_name(*parts: str) -> str:
    """An environment variable name for a secret value, e.g. MY_DB_PASSWORD."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").upper()
    return name if re.match(r"[A-Z_]", name) else f"_{name}"


def export_objects(include_secrets: bool = False) -> tuple[dict, list[str]]:
    """({connections, variables, pools} as the file writes them, [referenced variable names])."""
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    references: list[str] = []

    def secret(value, *parts: str):
        if include_secrets or value in (None, ""):
            return literal(value, *parts)
        name = reference_name(*parts)
        references.append(name)
        return f"${{{name}}}"

    def literal(value, *parts: str):
        if "${" in str(value):
            log(f"bootstrap export: {' '.join(parts)} holds a literal ${{...}}, which bootstrap reads as a reference")
        return value

    connections, variables, pools = {}, {}, {}
    with create_session() as session:
        for conn in session.scalars(select(Connection).order_by(Connection.conn_id)):
            entry = {
                "conn_type": conn.conn_type,
                "description": literal(conn.description, conn.conn_id, "description"),
                "host": literal(conn.host, conn.conn_id, "host"),
                "login": literal(conn.login, conn.conn_id, "login"),
                "password": secret(conn.password, conn.conn_id, "password"),
                "schema": literal(conn.schema, conn.conn_id, "schema"),
                "port": conn.port,
            }
            extra = conn.extra_dejson if conn.extra else {}
            if extra:
                entry["extra"] = {
                    key: (secret if _hidden(key) else literal)(value, conn.conn_id, key) for key, value in extra.items()
                }
            connections[conn.conn_id] = {key: value for key, value in entry.items() if value not in (None, "")}
        for variable in session.scalars(select(Variable).order_by(Variable.key)):
            value = variable.val
            variables[variable.key] = (secret if _hidden(variable.key) else literal)(value, "variable", variable.key)
        for pool in session.scalars(select(Pool).order_by(Pool.pool)):
            entry = {"slots": pool.slots, "description": pool.description, "include_deferred": pool.include_deferred}
            pools[pool.pool] = {key: value for key, value in entry.items() if value is not None}
    return {"connections": connections, "variables": variables, "pools": pools}, references


def export(include_secrets: bool = False) -> str:
    """The file's text: what `bootstrap` would apply to recreate the database's objects."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:  # the loader refuses aliases
            return True

    data, references = export_objects(include_secrets)
    header = [
        "# Written by `airflow-stack bootstrap export` (make bootstrap-export): this database's",
        "# connections, variables and pools in the bootstrap file's format (docs/connections.md).",
    ]
    if references:
        header += [
            "# Secret values are references: set these variables where bootstrap runs, or export with",
            "# --include-secrets (INCLUDE_SECRETS=1) to write them in clear:",
            *(f"#   {name}" for name in references),
        ]
    elif include_secrets:
        header.append("# Secret values are written in clear: keep this file private.")
    body = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    return "\n".join(header) + "\n" + body
