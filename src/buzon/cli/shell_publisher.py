"""The publisher's side of ``buzon shell``: an account, queues and channels, sending.

"Connect" opens a STOMP connection as the logged-in user and remembers the queue or channel
(and its access key); "send" publishes there and waits for the broker's receipt. A refusal
from the broker ends a STOMP connection, so after one the shell disconnects too and says so.
"""

from __future__ import annotations

from buzon.cli import users
from buzon.cli.session import CliError, Credentials, SavedLogin, logged_in, management_client
from buzon.cli.shell_state import ShellState
from buzon.client import ApiError


def register_account(state: ShellState) -> None:
    """Create an account (as the logged-in admin, if one is)."""
    prompt = state.prompt
    username = prompt.text("Username")
    password = prompt.secret("Password: ")
    if prompt.secret("Password again: ") != password:
        print("  the two passwords differ; nothing was registered")
        return
    with logged_in(state.args, optional=True) as client:
        user = client.register(username, password)
    print(f"registered {user.username}; choose 'log in' to use the account")


def log_in(state: ShellState) -> None:
    """Log in and keep the token as ``buzon user login`` does; keep the password for STOMP."""
    username = state.prompt.text("Username")
    password = state.prompt.secret("Password: ")
    with management_client(state.args) as client:
        token = client.login(username, password)
    state.disconnect()
    Credentials().save(state.url, SavedLogin(username, token.token, token.expires_at))
    state.password = password
    print(f"logged in as {username}")


def log_out(state: ShellState) -> None:
    """Disconnect, forget the password, and log out as ``buzon user logout`` does."""
    state.disconnect()
    state.password = None
    users.logout(state.args)  # the same revoke-then-forget as `buzon user logout`


def create(state: ShellState) -> None:
    """Create a queue or a channel, optionally protected by an access key."""
    kind = state.ask_kind()
    if kind is None:
        return
    name = state.prompt.text(f"Name of the new {kind}")
    key = None
    if state.prompt.yes_no("Protect it with an access key (others must give it)?", default=False):
        key = state.prompt.secret("Access key: ")
        if state.prompt.secret("Access key again: ") != key:
            print(f"  the two access keys differ; no {kind} was created")
            return
    with state.management() as client:
        info = client.create_destination(kind, name, access_key=key)
    protected = ", protected by an access key" if info.protected else ""
    print(f"created {kind} {info.name} ({info.address}){protected}")


def delete(state: ShellState) -> None:
    """Delete a queue or a channel (its owner or an admin), after a confirmation."""
    kind = state.ask_kind()
    if kind is None:
        return
    name = state.prompt.text(f"Name of the {kind} to delete")
    if not state.prompt.yes_no(f"Delete {kind} {name} and its messages?", default=False):
        print("  nothing was deleted")
        return
    with state.management() as client:
        client.delete_destination(kind, name)
    print(f"deleted {kind} {name}")


def connect(state: ShellState) -> None:
    """Open a STOMP connection for sending to one queue or channel."""
    kind = state.ask_kind()
    if kind is None:
        return
    name = state.prompt.text(f"Name of the {kind}")
    with state.management() as client:
        destination = state.find(client, kind, name)
    key = state.ask_key(destination)
    state.disconnect()
    state.connection = state.stomp_client()
    state.target, state.target_key = destination.address, key
    print(f"connected to {destination.address}; choose 'send a message' to publish there")


def disconnect(state: ShellState) -> None:
    """Close the publisher's STOMP connection."""
    target = state.disconnect()
    print("not connected" if target is None else f"disconnected from {target}")


def send(state: ShellState) -> None:
    """Publish one message where the publisher is connected, and wait for the receipt."""
    connection, target = state.connection, state.target
    if connection is None or target is None:
        raise CliError(detail="connect to a queue or a channel first (choose 'connect')")
    text = state.prompt.text("Message")
    try:
        connection.publish(target, text, access_key=state.target_key, create=False)
    except ApiError as exc:
        state.disconnect()
        raise CliError(exc.code, f"{exc}; disconnected from {target}") from None
    print(f"sent to {target}; the broker confirmed it")
