"""TLS for the SDK: the broker's certificate and host name are always verified.

By default against the system's trust store; with ``ca_file``, against the CAs in that
file only (a private CA). There is no switch that turns verification off: a client that
must accept anything can still pass its own ``ssl.SSLContext``, and then it said so.
"""

from __future__ import annotations

import os
import ssl

from buzon.errors import ErrorCode, RequestError

CaFile = str | os.PathLike[str]


def client_context(
    url: str, tls: bool, context: ssl.SSLContext | None, ca_file: CaFile | None
) -> ssl.SSLContext | None:
    """The context to connect to ``url`` with: None for a plain URL, else ``context``, else
    one verifying against ``ca_file`` or the system's trust store.

    Raises:
        RequestError: BAD_REQUEST when both ``context`` and ``ca_file`` are given, when
            either is given for a URL without TLS (asking for TLS and then not using it
            should not pass silently), or when ``ca_file`` cannot be read or holds no
            PEM certificate.
    """
    if context is not None and ca_file is not None:
        raise RequestError(ErrorCode.BAD_REQUEST, "give ssl or ca_file, not both")
    if not tls:
        if context is not None or ca_file is not None:
            raise RequestError(
                ErrorCode.BAD_REQUEST, f"{url}: ssl and ca_file need a TLS URL (stomp+ssl, https)"
            )
        return None
    if context is not None:
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError:
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"CA file {ca_file} holds no PEM certificate"
        ) from None
    except OSError as exc:
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"cannot read CA file {ca_file}: {exc.strerror}"
        ) from None


# OpenSSL's verify codes for "signed by a CA you do not trust": self-signed, self-signed
# in the chain, issuer unknown.
_UNKNOWN_ISSUER = frozenset({18, 19, 20})


def failure_reason(exc: OSError) -> str:
    """Why a connection attempt failed, in words; TLS failures say what to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = " (a private CA? give its certificate as the CA file)"
        unknown = exc.verify_code in _UNKNOWN_ISSUER
        return f"TLS certificate verification failed: {exc.verify_message}{hint if unknown else ''}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); is that port serving TLS?"
    return exc.strerror or str(exc)
