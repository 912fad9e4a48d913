"""Where DAG artifacts come from: an HTTP(S) artifact repository or S3.

AIRFLOW_STACK_DAG_SOURCE names either the artifact itself (a URL or key ending in .tar.gz,
.tgz or .zip, e.g. an Artifactory "latest" URL) or a version pointer: a small text file whose
first line is the artifact's name or URL relative to the pointer, optionally preceded by its
SHA-256 in `sha256sum` format (`HASH  dags-1.4.2.tar.gz`).

Every poll is a conditional request (If-None-Match / If-Modified-Since; S3: IfNoneMatch on the
ETag): an unchanged source downloads nothing. The release's version is the artifact's name
without its suffix (pointer mode) or the name plus the first 12 hex digits of its SHA-256
(artifact mode, where the name may stay the same). The expected SHA-256 comes from the
pointer line, the `X-Checksum-Sha256` header (Artifactory), the S3 object's `sha256`
metadata, or a `.sha256` sidecar next to the artifact, in that order.

Hostile sources are expected. Credentials (bearer token, basic auth) go only to the origin of
AIRFLOW_STACK_DAG_SOURCE: redirects are followed by hand, and an artifact or redirect on
another origin is refused unless AIRFLOW_STACK_DAG_SOURCE_ALLOWED_ORIGINS lists it (it then
gets no credentials). Every read stops at its limit as it streams (pointer, sidecar,
artifact), and the whole poll at its deadline, however slowly a server sends.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

from airflow_stack.dags.archive import ARCHIVE_SUFFIXES, archive_format
from airflow_stack.dags.releases import check_version

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_POINTER_BYTES = 64 * 1024
MAX_SIDECAR_BYTES = 4 * 1024
MAX_REDIRECTS = 5
_CHUNK = 1 << 20


class SourceError(Exception):
    """The source could not be read; the next poll tries again."""


@dataclass
class Offer:
    """What the source offers now: an artifact, its version, and how to ask again."""

    artifact: str  # URL or s3:// URL of the archive
    fmt: str  # tar | zip
    version: str  # set by check(): from the pointer, or from the content (artifact mode)
    state: dict[str, str] = field(default_factory=dict)  # conditional-request state to keep
    sha256: str | None = None  # expected, when the source offers one
    archive: Path | None = None  # set once downloaded
    digest: str | None = None  # SHA-256 of the downloaded archive, computed while streaming


class Source(Protocol):
    location: str
    deadline: float | None  # time.monotonic() by which the current poll must be done

    def check(self, state: dict[str, str], scratch: Path) -> Offer | None: ...

    def download(self, offer: Offer, scratch: Path) -> Path: ...

    def sidecar_sha256(self, offer: Offer) -> str | None: ...


def is_artifact(location: str) -> bool:
    return PurePosixPath(urlsplit(location).path).name.lower().endswith(ARCHIVE_SUFFIXES)


def strip_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse_pointer(text: str, where: str) -> tuple[str, str | None]:
    """(artifact reference, sha256 or None) from a pointer file's first meaningful line."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 2 and _SHA256.match(parts[0]):
            return parts[1].lstrip("*"), parts[0].lower()
        if len(parts) == 1:
            return parts[0], None
        break
    raise SourceError(
        f"the version pointer {where} does not name an artifact: its first line must be "
        "`NAME.tar.gz` (or .tgz, .zip) or `SHA256  NAME.tar.gz`"
    )


def check_pointer_size(size: int, pointer: str) -> None:
    if size > MAX_POINTER_BYTES:
        raise SourceError(f"the version pointer {pointer} is over {MAX_POINTER_BYTES // 1024} KiB: is it an artifact?")


def offer_from_pointer(text: str, pointer: str, resolve) -> Offer:
    reference, sha256 = parse_pointer(text, pointer)
    name = PurePosixPath(urlsplit(reference).path).name
    try:
        fmt = archive_format(name)
        version = check_version(strip_suffix(name))
    except Exception as exc:  # ValueError (an unsafe version) or UnsafeArchive (not an archive name)
        raise SourceError(f"the version pointer {pointer} names {_short(reference)!r}: {_short(str(exc))}") from None
    return Offer(artifact=resolve(reference), fmt=fmt, version=version, sha256=sha256)


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    return iter(lambda: source.read(_CHUNK), b"") if hasattr(source, "read") else iter(source)


def bounded(chunks: Iterable[bytes], max_bytes: int, where: str, deadline: float | None) -> Iterator[bytes]:
    """The chunks, stopped with a SourceError past `max_bytes` or past the poll's deadline."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise SourceError(f"{where} is larger than the limit of {max_bytes} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise SourceError(
                f"reading {where} did not finish within the poll's deadline (AIRFLOW_STACK_DAG_POLL_TIMEOUT)"
            )
        yield chunk


def read_capped(source: BinaryIO | Iterable[bytes], max_bytes: int, where: str, deadline: float | None) -> bytes:
    """A small document (pointer, sidecar), read whole but never past `max_bytes`."""
    return b"".join(bounded(_chunks(source), max_bytes, where, deadline))


def copy_capped(
    source: BinaryIO | Iterable[bytes], target: Path, max_bytes: int, where: str, deadline: float | None = None
) -> str:
    """Stream chunks (an iterator of bytes or a file) into `target`; return the SHA-256."""
    digest = hashlib.sha256()
    with open(target, "wb") as handle:
        for chunk in bounded(_chunks(source), max_bytes, where, deadline):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def version_by_content(artifact: str, sha256: str) -> str:
    name = PurePosixPath(urlsplit(artifact).path).name
    try:
        return check_version(f"{strip_suffix(name)[:100]}-{sha256[:12]}")
    except ValueError as exc:
        raise SourceError(f"the artifact {_short(artifact)} cannot name a release: {exc}") from None


def _short(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters for a message (names and URLs may be crafted)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def origin(url: str) -> str:
    """`scheme://host[:port]`, lower-cased, the default port left out."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


# ------------------------------------------------------------------------------------------
class HttpSource:
    """An HTTP(S) artifact repository (Artifactory, Nexus, a web server).

    Redirects are followed by hand, at most MAX_REDIRECTS: each hop's origin must be the
    source's or one of `allowed_origins`, and credentials go to the source's origin only."""

    def __init__(
        self,
        location: str,
        *,
        token: str | None,
        username: str | None,
        password: str | None,
        timeout: float,
        max_bytes: int,
        ca_bundle: str | None,
        allowed_origins: tuple[str, ...] = (),
    ):
        import httpx

        self.location = location
        self.max_bytes = max_bytes
        self.deadline: float | None = None
        self.origin = origin(location)
        self.allowed = {self.origin, *(origin(o) for o in allowed_origins)}
        self._credentials: dict[str, str] = {}
        if token:
            self._credentials["Authorization"] = f"Bearer {token}"
        elif username:
            basic = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._credentials["Authorization"] = f"Basic {basic}"
        self._httpx = httpx
        self.client = httpx.Client(
            headers={"User-Agent": "airflow-stack-dag-sync"},
            timeout=timeout,
            follow_redirects=False,
            verify=ca_bundle or True,
        )

    def _error(self, url: str, exc: Exception) -> SourceError:
        httpx = self._httpx
        if isinstance(exc, httpx.TimeoutException):
            return SourceError(f"GET {_short(url)} timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return SourceError(f"cannot connect to {_short(url)} ({exc})")
        if isinstance(exc, httpx.RemoteProtocolError):
            return SourceError(f"GET {_short(url)} broke off: {exc} (truncated download)")
        return SourceError(f"GET {_short(url)} failed: {type(exc).__name__}: {_short(str(exc))}")

    def _status_error(self, response) -> SourceError:
        hint = {
            401: " (check the token or user and password)",
            403: " (the credentials lack read access)",
            404: " (no such artifact or pointer)",
        }.get(response.status_code, "")
        return SourceError(
            f"GET {_short(str(response.request.url))} answered {response.status_code} "
            f"{_short(response.reason_phrase, 80)}{hint}"
        )

    def _conditional(self, state: dict[str, str]) -> dict[str, str]:
        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        elif state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
        return headers

    @staticmethod
    def _state(response) -> dict[str, str]:
        pairs = (("etag", response.headers.get("etag")), ("last_modified", response.headers.get("last-modified")))
        return {k: v[:1024] for k, v in pairs if v}

    def check_origin(self, url: str, why: str) -> None:
        if origin(url) not in self.allowed:
            raise SourceError(
                f"{why} {_short(url)}, on another origin than AIRFLOW_STACK_DAG_SOURCE ({self.origin}); refused "
                "(list that origin in AIRFLOW_STACK_DAG_SOURCE_ALLOWED_ORIGINS to allow it; it gets no credentials)"
            )

    def _open(self, url: str, headers: dict[str, str]):
        """A streamed GET of `url` after following redirects by hand; the caller closes it."""
        self.check_origin(url, "the source names")
        for _ in range(MAX_REDIRECTS + 1):
            send = dict(headers) | (self._credentials if origin(url) == self.origin else {})
            try:
                response = self.client.send(self.client.build_request("GET", url, headers=send), stream=True)
            except self._httpx.HTTPError as exc:
                raise self._error(url, exc) from None
            if response.status_code not in (301, 302, 303, 307, 308) or "location" not in response.headers:
                return response
            response.close()
            target = urljoin(url, response.headers.get("location", ""))
            self.check_origin(target, f"{_short(url)} redirects to")
            url = target
        raise SourceError(f"{_short(self.location)}: more than {MAX_REDIRECTS} redirects")

    def _fetch(self, url: str, headers: dict[str, str], max_bytes: int, target: Path | None):
        """GET `url`: (response, sha256) streamed into `target`, or (response, content) when
        `target` is None; (response, None) on 304. Stops at `max_bytes` and at the deadline."""
        response = self._open(url, headers)
        try:
            if response.status_code == 304:
                return response, None
            if response.status_code != 200:
                raise self._status_error(response)
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise SourceError(f"{_short(url)} is {length} bytes, over the limit of {max_bytes}")
            where = _short(str(response.url))
            if target is None:
                return response, read_capped(response.iter_bytes(), max_bytes, where, self.deadline)
            return response, copy_capped(response.iter_bytes(), target, max_bytes, where, self.deadline)
        except self._httpx.HTTPError as exc:
            raise self._error(url, exc) from None
        finally:
            response.close()

    def check(self, state: dict[str, str], scratch: Path) -> Offer | None:
        if is_artifact(self.location):
            target = scratch / "artifact"
            response, sha256 = self._fetch(self.location, self._conditional(state), self.max_bytes, target)
            if sha256 is None:
                return None
            final = str(response.url)
            try:
                fmt = archive_format(PurePosixPath(urlsplit(final).path).name)
            except Exception as exc:  # UnsafeArchive: the redirect named no archive
                raise SourceError(f"{_short(final)}: {exc}") from None
            return Offer(
                final,
                fmt,
                version_by_content(final, sha256),
                self._state(response),
                _checksum_header(response),
                target,
                sha256,
            )
        response, content = self._fetch(self.location, self._conditional(state), MAX_POINTER_BYTES, None)
        if content is None:
            return None
        text = content.decode("utf-8", "replace")
        offer = offer_from_pointer(text, self.location, lambda ref: urljoin(str(response.url), ref))
        self.check_origin(offer.artifact, "the version pointer names")
        offer.state = self._state(response)
        return offer

    def download(self, offer: Offer, scratch: Path) -> Path:
        if offer.archive is None:
            target = scratch / "artifact"
            response, offer.digest = self._fetch(offer.artifact, {}, self.max_bytes, target)
            offer.sha256 = offer.sha256 or _checksum_header(response)
            offer.archive = target
        return offer.archive

    def sidecar_sha256(self, offer: Offer) -> str | None:
        url = f"{offer.artifact}.sha256"
        try:
            _, content = self._fetch(url, {}, MAX_SIDECAR_BYTES, None)
        except SourceError as exc:
            if " answered 404 " in str(exc):
                return None
            raise
        return _checksum_from_text((content or b"").decode("utf-8", "replace"), url)


def _checksum_header(response) -> str | None:
    value = response.headers.get("x-checksum-sha256")
    return value[:64] if value else None


# ------------------------------------------------------------------------------------------
class S3Source:
    """An object in S3 (or an S3-compatible store), read with boto3's default credentials:
    the ECS task role, the ~/.aws profile, or keys in the environment."""

    def __init__(self, location: str, *, endpoint_url: str | None, timeout: float, max_bytes: int):
        import boto3
        from botocore.config import Config

        parts = urlsplit(location)
        self.location = location
        self.bucket, self.key = parts.netloc, parts.path.lstrip("/")
        self.max_bytes = max_bytes
        self.deadline: float | None = None
        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2})
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)

    def _get(self, key: str, etag: str | None = None):
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{key}"
        kwargs = {"Bucket": self.bucket, "Key": key}
        if etag:
            kwargs["IfNoneMatch"] = etag
        try:
            return self.client.get_object(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 304 or error.get("Code") in ("304", "NotModified"):
                return None
            if error.get("Code") in ("NoSuchKey", "404"):
                raise SourceError(f"{where} does not exist") from None
            if error.get("Code") == "NoSuchBucket":
                raise SourceError(f"the bucket {self.bucket!r} of {where} does not exist") from None
            if error.get("Code") in ("AccessDenied", "403"):
                raise SourceError(f"no permission to read {where} (grant s3:GetObject to this role)") from None
            raise SourceError(f"reading {where} failed: {error.get('Code')} {error.get('Message', '')}") from None
        except BotoCoreError as exc:
            raise SourceError(f"cannot reach S3 for {where}: {exc}") from None

    def _to_file(self, response, target: Path, where: str) -> str:
        from botocore.exceptions import BotoCoreError

        if response["ContentLength"] > self.max_bytes:
            raise SourceError(f"{where} is {response['ContentLength']} bytes, over the limit of {self.max_bytes}")
        try:
            return copy_capped(response["Body"], target, self.max_bytes, where, self.deadline)
        except BotoCoreError as exc:  # IncompleteReadError, ReadTimeoutError
            raise SourceError(f"reading {where} broke off: {exc} (truncated download)") from None

    def check(self, state: dict[str, str], scratch: Path) -> Offer | None:
        response = self._get(self.key, state.get("etag"))
        if response is None:
            return None
        if is_artifact(self.location):
            target = scratch / "artifact"
            sha256 = self._to_file(response, target, self.location)
            return Offer(
                self.location,
                archive_format(self.key),
                version_by_content(self.location, sha256),
                {"etag": response["ETag"]},
                response.get("Metadata", {}).get("sha256"),
                target,
                sha256,
            )
        check_pointer_size(response["ContentLength"], self.location)
        text = read_capped(response["Body"], MAX_POINTER_BYTES, self.location, self.deadline).decode("utf-8", "replace")
        directory = str(PurePosixPath(self.key).parent)

        def resolve(reference: str) -> str:
            if reference.startswith("s3://"):
                return reference
            key = str(PurePosixPath(directory, reference)) if directory != "." else reference
            return f"s3://{self.bucket}/{key}"

        offer = offer_from_pointer(text, self.location, resolve)
        offer.state = {"etag": response["ETag"]}
        return offer

    def download(self, offer: Offer, scratch: Path) -> Path:
        if offer.archive is None:
            bucket, key = urlsplit(offer.artifact).netloc, urlsplit(offer.artifact).path.lstrip("/")
            if bucket != self.bucket:
                raise SourceError(f"the pointer names {offer.artifact}, outside the bucket {self.bucket!r}")
            response = self._get(key)
            target = scratch / "artifact"
            offer.digest = self._to_file(response, target, offer.artifact)
            offer.sha256 = offer.sha256 or response.get("Metadata", {}).get("sha256")
            offer.archive = target
        return offer.archive

    def sidecar_sha256(self, offer: Offer) -> str | None:
        key = urlsplit(offer.artifact).path.lstrip("/") + ".sha256"
        try:
            response = self._get(key)
        except SourceError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        where = f"s3://{self.bucket}/{key}"
        text = read_capped(response["Body"], MAX_SIDECAR_BYTES, where, self.deadline).decode("utf-8", "replace")
        return _checksum_from_text(text, where)


def _checksum_from_text(text: str, where: str) -> str:
    first = text.strip().split()[0] if text.strip() else ""
    if not _SHA256.match(first):
        raise SourceError(f"the checksum file {where} does not start with a SHA-256 (64 hex digits)")
    return first.lower()
