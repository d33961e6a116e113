"""What the ``buzon`` command says when a queue or channel it was given does not exist.

The messaging commands never create a destination by mistake: they send
``auto-create:false`` (see ``buzon.server.stomp_commands``), so a mistyped name gets an
ERROR instead of a new, empty queue that nobody publishes to. The person then reads that
the name is unknown, a close existing name if there is one (the likely typo), and the
command that creates it. The names come from the HTTP API, asked as the same user; when
it cannot be asked, the error simply has no suggestion.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import shlex
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

from buzon.cli.session import DEFAULT_URL, CliError, Credentials, ca_file_of, url_of
from buzon.cli.stomp_login import StompLogin, same_broker
from buzon.client import DestinationKind, ManagementClient, broker_url
from buzon.client.urls import parse_stomp_url
from buzon.errors import BuzonError, ErrorCode

SUGGESTIONS = 3
"""Close names shown at most."""

Known = Mapping[DestinationKind, Collection[str]]
"""The names of the queues and of the channels that exist."""


def missing(kind: DestinationKind, name: str, known: Known, *, create_with: str) -> CliError:
    """The error for ``name``, which is no ``kind``: close names, and how to create it."""
    lines = [f"no {kind} named '{name}'"]
    close = difflib.get_close_matches(name, known.get(kind, ()), n=SUGGESTIONS)
    if close:
        lines.append(f"did you mean {' or '.join(f'{other!r}' for other in close)}?")
    lines.extend(
        f"(there is a {other} named '{name}')"
        for other in DestinationKind
        if other is not kind and name in known.get(other, ())
    )
    lines.append(f"to create it: {create_with}")
    return CliError(ErrorCode.DESTINATION_NOT_FOUND, "\n".join(lines))


def create_command(kind: DestinationKind, name: str, url: str) -> str:
    """The ``buzon queue create NAME`` (or channel) command, with ``--url`` unless default."""
    words = ["buzon", kind.value, "create", name]
    if url != broker_url(os.environ.get("BUZON_URL") or DEFAULT_URL):
        words += ["--url", url]
    return shlex.join(words)


def known_names(management: ManagementClient) -> Known:
    """Every queue's and channel's name, as ``management`` sees them."""
    return {kind: [d.name for d in management.list_destinations(kind)] for kind in DestinationKind}


def missing_for_command(
    args: argparse.Namespace, login: StompLogin, kind: DestinationKind, name: str
) -> CliError:
    """:func:`missing` for a messaging command that logged in over STOMP as ``login``."""
    url = url_of(args)
    known: Known = {}
    with contextlib.suppress(BuzonError):
        management = _http_client(args, login)
        if management is not None:
            with management:
                known = known_names(management)
    return missing(kind, name, known, create_with=create_command(kind, name, url))


def _http_client(args: argparse.Namespace, login: StompLogin) -> ManagementClient | None:
    """An HTTP client acting as ``login``'s user, or None.

    It uses the saved ``buzon user login`` token when that is what STOMP was given, else
    the password (HTTP Basic). A secret goes nowhere it did not already go: None when the
    STOMP address is not that broker's (:func:`same_broker`), or the HTTP URL is plain where
    STOMP used TLS.
    """
    url = url_of(args)
    if not same_broker(args, login.url) or (
        parse_stomp_url(login.url).tls and urlsplit(url).scheme != "https"
    ):
        return None
    saved = Credentials().get(url)
    ca_file = ca_file_of(args, url)
    if saved is not None and saved.username == login.username and saved.token == login.password:
        return ManagementClient(url, token=saved.token, ca_file=ca_file)
    return ManagementClient(url, basic=(login.username, login.password), ca_file=ca_file)
