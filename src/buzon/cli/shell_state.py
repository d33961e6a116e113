"""What a ``buzon shell`` session knows, and the steps its actions share.

The login is the one ``buzon user login`` keeps (the shell's "log in" stores it the same
way), so the shell and the other commands see the same user. The password typed at "log
in" stays in this process's memory for the STOMP connections the session opens ("connect",
"watch"), and is written nowhere; a shell started with an existing login asks for it (or
reads ``$BUZON_PASSWORD``) the first time a STOMP connection needs it.
"""

from __future__ import annotations

import argparse
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

from buzon.cli.missing import known_names, missing
from buzon.cli.session import CliError, Credentials, ca_file_of, logged_in, url_of
from buzon.cli.shell_prompt import Prompter
from buzon.cli.stomp_login import StompLogin
from buzon.client import (
    ApiError,
    ChannelInfo,
    Client,
    Destination,
    DestinationKind,
    ManagementClient,
    QueueInfo,
)
from buzon.errors import ErrorCode


@dataclass
class ShellState:
    """One session: the broker, the password of its login, the publisher's connection.

    Attributes:
        args: the command line (``--url``, ``--stomp-url``).
        prompt: how questions are asked.
        stomp_url: the broker's STOMP address, found once when the session starts.
        password: the login's password, for STOMP; in memory only.
        connection: the publisher's STOMP connection, after "connect".
        target: the queue or channel address that connection publishes to.
        target_key: the access key given for it, if any.
    """

    args: argparse.Namespace
    prompt: Prompter
    stomp_url: str
    password: str | None = None
    connection: Client | None = None
    target: str | None = None
    target_key: str | None = None

    @property
    def url(self) -> str:
        """The broker's HTTP root URL."""
        return url_of(self.args)

    def username(self) -> str | None:
        """Who is logged in to this broker, if anyone."""
        login = Credentials().get(self.url)
        return None if login is None else login.username

    def status(self) -> str:
        """Who is logged in and where the publisher is connected, for menu titles."""
        user = self.username()
        parts = [f"logged in as {user}" if user else "not logged in"]
        if self.target is not None:
            parts.append(f"connected to {self.target}")
        return "; ".join(parts)

    def require_user(self) -> str:
        """The logged-in user.

        Raises:
            CliError: NOT_AUTHENTICATED when nobody is logged in.
        """
        user = self.username()
        if user is None:
            raise CliError(ErrorCode.NOT_AUTHENTICATED, "log in first (choose 'log in')")
        return user

    def management(self) -> AbstractContextManager[ManagementClient]:
        """An HTTP client acting as the logged-in user."""
        self.require_user()
        return logged_in(self.args)

    def stomp_client(self) -> Client:
        """A connected STOMP client for the logged-in user; a refused password is forgotten."""
        user = self.require_user()
        url = self.stomp_url
        if self.password is None:
            self.password = os.environ.get("BUZON_PASSWORD") or self.prompt.secret(
                f"Password of {user} (for the STOMP connection): "
            )
        client = StompLogin(url, user, self.password, ca_file_of(self.args, url)).client()
        try:
            client.connect()
        except BaseException as exc:
            client.close()
            if isinstance(exc, ApiError) and exc.code is ErrorCode.AUTH_FAILED:
                self.password = None
            raise
        return client

    def disconnect(self) -> str | None:
        """Close the publisher's connection; return the address it was connected to."""
        connection, target = self.connection, self.target
        self.connection = self.target = self.target_key = None
        if connection is not None:
            connection.close()
        return target

    def ask_kind(self) -> DestinationKind | None:
        """Queue or channel? None when the person goes back."""
        kinds = list(DestinationKind)
        options = [f"a {kind} ({_MODELS[kind]})" for kind in kinds]
        choice = self.prompt.choose("Which kind?", options, back="back")
        return None if choice is None else kinds[choice]

    def find(
        self, client: ManagementClient, kind: DestinationKind, name: str
    ) -> QueueInfo | ChannelInfo:
        """The queue or channel named ``name``.

        Raises:
            CliError: DESTINATION_NOT_FOUND, with close names and how to create it.
        """
        try:
            return client.get_destination(kind, name)
        except ApiError as exc:
            if exc.code is not ErrorCode.DESTINATION_NOT_FOUND:
                raise
            how = "choose 'create a queue or a channel' in the publisher menu"
            raise missing(kind, name, known_names(client), create_with=how) from None

    def ask_key(self, destination: Destination) -> str | None:
        """The access key for ``destination`` when another user's key protects it."""
        if not destination.protected or destination.owner == self.username():
            return None
        key = self.prompt.secret(
            f"Access key of {destination.kind} {destination.name} (Enter if you need none): "
        )
        return key or None


_MODELS = {
    DestinationKind.QUEUE: "each message goes to one consumer",
    DestinationKind.CHANNEL: "every subscriber gets each message",
}
