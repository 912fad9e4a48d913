"""The host side of `make -C deploy/aws rds-ca`: fetches Amazon RDS's certificate bundle into the
build context, so that the image holds the CAs that sign RDS's server certificates and the ECS
services can connect with `sslmode=verify-full` (docs/aws.md). Standard library only, like
host.envfile.

    python3 -m airflow_stack.host.rdsca OUT [--url URL]
        download the bundle (AWS's global bundle by default) over verified HTTPS, at most 2 MiB;
        refuse anything that is not a list of PEM certificates OpenSSL can load; write OUT
        atomically (an existing OUT is kept when the new one is refused)
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path

from airflow_stack.core.errors import StackError

# AWS's bundle of every RDS CA, for all Regions ("Certificate bundles for all AWS Regions" in the
# RDS user guide, "Using SSL/TLS to encrypt a connection to a DB instance or cluster").
GLOBAL_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
MAX_BYTES = 2 * 2**20  # the global bundle is about 160 KiB
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)


def certificates(pem: str, source: str) -> list[str]:
    """The PEM certificates of `pem`, each loadable by OpenSSL as a CA; refuses anything else."""
    found = _CERTIFICATE.findall(pem)
    if not found or _CERTIFICATE.sub("", pem).strip():
        raise StackError(
            f"{source} is not a list of PEM certificates"
            + (f" (found {len(found)} certificate(s) and other text)" if found else ""),
            setting="RDS_CA_URL",
            fix=f"point it at AWS's bundle ({GLOBAL_BUNDLE_URL}) or a regional one; a proxy's error page "
            "or a login page is not a bundle",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for position, certificate in enumerate(found, start=1):
        try:
            context.load_verify_locations(cadata=certificate)
        except ssl.SSLError as exc:
            raise StackError(
                f"certificate {position} of {source} does not load: {exc}",
                setting="RDS_CA_URL",
                fix="download the bundle again; if it still fails, the file at that URL is damaged",
            ) from None
    return found


def fetch(url: str, timeout: float = 60) -> str:
    """The text at `url` over HTTPS (the system's trusted roots verify the server), bounded."""
    if not url.startswith("https://"):
        raise StackError(
            f"{url} is not an https:// URL; a CA bundle fetched in clear could be anyone's",
            setting="RDS_CA_URL",
            fix=f"use AWS's https URL ({GLOBAL_BUNDLE_URL})",
        )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise StackError(
            f"could not download {url}: {exc}",
            setting="RDS_CA_URL",
            fix="check this machine's access to the internet (and its proxy), then run make -C deploy/aws rds-ca "
            "again; or download the bundle by other means into deploy/aws/rds-ca/global-bundle.pem",
        ) from None
    if len(body) > MAX_BYTES:
        raise StackError(
            f"{url} sent more than {MAX_BYTES // 2**20} MiB; an RDS CA bundle is about 160 KiB",
            setting="RDS_CA_URL",
            fix=f"point it at AWS's bundle ({GLOBAL_BUNDLE_URL})",
        )
    return body.decode("ascii", errors="replace")


def write_bundle(out: Path, url: str = GLOBAL_BUNDLE_URL) -> int:
    """Fetch, check and write the bundle atomically; the number of certificates written."""
    found = certificates(fetch(url), url)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False) as tmp:
        tmp.write("\n".join(found) + "\n")
    os.chmod(tmp.name, 0o644)  # read by the image's non-root user
    os.replace(tmp.name, out)
    return len(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rdsca", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--url", default=GLOBAL_BUNDLE_URL)
    args = parser.parse_args(argv)
    try:
        count = write_bundle(args.out, args.url)
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(f"rds-ca: {count} certificates from {args.url} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
