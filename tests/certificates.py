"""A private CA and a server certificate made at test time, written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """What an operator would have: the CA clients trust, the broker's chain and key."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, *names: str) -> TlsFiles:
    """A new CA and a certificate it signed for ``names`` (default: 127.0.0.1 and localhost)."""
    ca = trustme.CA()
    issued = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(files.cert), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files
