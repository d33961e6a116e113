"""uvicorn's h11 protocol, answering malformed HTTP with the API's JSON error body.

When h11 cannot parse a request (a bad request line, a bad header, a head that grows past
:data:`MAX_REQUEST_HEAD` before it ends) the request never reaches the application, and
uvicorn answers with a plain-text 400 of its own. This protocol sends the same
``{"error": {...}}`` body as every other error instead (:func:`problem`), then closes the
connection: after a framing error nothing more on it can be trusted.
"""

from __future__ import annotations

import sys
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from buzon.errors import ErrorCode
from buzon.server.http.errors import problem
from buzon.server.http.limits import MAX_REQUEST_HEAD


class JsonErrorH11Protocol(H11Protocol):
    """Give uvicorn ``http=JsonErrorH11Protocol``."""

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while it handles h11's error, which hints 431 only for a head
        # still unfinished at the cap (a bad request with more bytes behind it is a 400)
        error = sys.exception()
        if (
            isinstance(error, h11.RemoteProtocolError)
            and error.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        ):
            code = ErrorCode.HEADERS_TOO_LARGE
            detail = f"request heads are at most {MAX_REQUEST_HEAD} bytes"
        else:
            code = ErrorCode.BAD_REQUEST
            detail = "malformed HTTP request"
        response = problem(code, detail)
        head = h11.Response(
            status_code=response.status_code,
            headers=[*response.raw_headers, (b"connection", b"close")],
            reason=HTTPStatus(response.status_code).phrase.encode(),
        )
        for event in (head, h11.Data(data=bytes(response.body)), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()
