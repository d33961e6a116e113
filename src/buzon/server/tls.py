"""The server's TLS context: one certificate and key, shared by STOMP over TLS and HTTPS.

With ``plaintext`` off (``--no-plaintext``) only the TLS listeners exist, which makes no
sense without a certificate: that too is refused here.

The files are read once, at start. Every way they can be wrong (only one of them given,
unreadable, not PEM, a key that belongs to another certificate, a key with a passphrase)
is reported as one :class:`ConfigError` line naming the file, before anything listens.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from buzon.server.config import ConfigError, Settings


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for ``settings``' certificate and key; None when TLS is off.

    Raises:
        ConfigError: one of the two is set without the other, or they cannot be loaded.
    """
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        if not settings.plaintext:
            raise ConfigError(
                detail="--no-plaintext needs --tls-cert and --tls-key: without TLS nothing"
                " would listen"
            )
        return None
    if cert is None or key is None:
        given, missing = ("tls-cert", "tls-key") if key is None else ("tls-key", "tls-cert")
        raise ConfigError(
            detail=f"--{given} needs --{missing} too"
            f" (BUZON_{missing.upper().replace('-', '_')}, or {missing} in buzon.toml)"
        )
    for label, path in (("certificate", cert), ("key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(detail=f"cannot read TLS {label} {path}: {exc.strerror}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        raise ConfigError(
            detail=f"TLS key {key} is protected by a passphrase; give buzon an unencrypted copy"
            " (readable by the broker's user only)"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(detail=_load_failure(cert, key, exc)) from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal, and a service would hang.
    raise _EncryptedKey


def _load_failure(cert: Path, key: Path, exc: ssl.SSLError) -> str:
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"TLS key {key} does not belong to the certificate {cert}"
    try:
        ssl.create_default_context().load_verify_locations(cafile=cert)
    except ssl.SSLError:
        return f"TLS certificate {cert} holds no PEM certificate"
    return f"TLS key {key} is not a PEM private key"
