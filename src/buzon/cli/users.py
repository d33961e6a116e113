"""``buzon user``: register, log in and out, who am I; for admins list, disable, enable,
delete; and, on the broker's machine, set a lost password in its data directory."""

from __future__ import annotations

import argparse
import asyncio
import sys
from operator import attrgetter
from typing import Any

from buzon.auth import SecretHasher
from buzon.auth.users import check_password
from buzon.cli.output import Column, cell, print_fields, print_json, print_table
from buzon.cli.session import (
    CliError,
    Credentials,
    SavedLogin,
    add_action,
    logged_in,
    login_hint,
    management_client,
    read_secret,
    read_username,
    url_of,
)
from buzon.client import ApiError, User
from buzon.errors import ErrorCode
from buzon.server.config import load_settings
from buzon.store.offline import set_password_hash

_USER_COLUMNS: list[Column[User]] = [
    ("User", attrgetter("username")),
    ("Role", attrgetter("role")),
    ("Disabled", attrgetter("disabled")),
    ("Created", attrgetter("created_at")),
]


def register(commands: Any) -> None:
    """Add ``buzon user`` and its actions to the top-level subcommands."""
    group: argparse.ArgumentParser = commands.add_parser(
        "user",
        help="accounts: register, log in and out, manage users",
        description="Accounts on a broker. Log in once; later commands use the stored token.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    parser = add_action(actions, "register", _register, "create an account", prints_data=True)
    _credential_options(parser)
    parser.add_argument(
        "--role",
        choices=("user", "admin"),
        default="user",
        help="only an admin (logged in) may create admins",
    )
    summary = "log in and keep the token for this broker"
    _credential_options(add_action(actions, "login", _login, summary, prints_data=True))
    summary = "revoke the stored token on the broker and forget it"
    add_action(actions, "logout", logout, summary, prints_data=False)
    add_action(actions, "whoami", _whoami, "show the logged-in account", prints_data=True)
    add_action(actions, "list", _list, "list every account (admin)", prints_data=True)
    for name, disabled in (("disable", True), ("enable", False)):
        summary = f"{name} an account (admin)"
        parser = add_action(actions, name, _set_disabled, summary, prints_data=True)
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(disabled=disabled)
    summary = "delete an account and revoke its tokens (admin); its queues and channels stay"
    parser = add_action(actions, "delete", _delete, summary, prints_data=False)
    parser.add_argument("name", metavar="NAME")
    parser = actions.add_parser(
        "set-password",
        help="set a new password in a broker's data directory (no login needed)",
        description="Set a new password for NAME directly in the broker's database, and"
        " revoke NAME's tokens: the way back in when the admin password is lost. Run it on"
        " the broker's machine, as the system user that owns the data directory, or, for a"
        " cluster, with --database-url (or BUZON_DATABASE_URL) and the database's"
        " credentials. The password is asked twice at a terminal, else read from the first"
        " line of stdin.",
        allow_abbrev=False,
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the broker's --data-dir (default: as buzon serve finds it: $BUZON_DATA_DIR,"
        " data-dir in ./buzon.toml, else buzon-data)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="a cluster's PostgreSQL database instead (postgresql://USER@HOST:PORT/DB)",
    )
    parser.set_defaults(handler=_set_password)


def _credential_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="the login name (asked when omitted)")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else it is asked, not echoed)",
    )


def _password(args: argparse.Namespace, *, confirm: bool = False) -> str:
    return read_secret(
        "password", stdin_flag="--password-stdin", from_stdin=args.password_stdin, confirm=confirm
    )


def _register(args: argparse.Namespace) -> int:
    username = read_username(args.username)
    password = _password(args, confirm=True)
    with logged_in(args, optional=True) as client:
        user = client.register(username, password, role=args.role)
    if args.json:
        print_json(user)
    else:
        url = url_of(args)
        print(f"registered {user.username} ({user.role}) at {url}; now run: {login_hint(url)}")
    return 0


def _login(args: argparse.Namespace) -> int:
    url = url_of(args)
    username = read_username(args.username)
    password = _password(args)
    with management_client(args) as client:
        token = client.login(username, password)
    Credentials().save(url, SavedLogin(username, token.token, token.expires_at))
    if args.json:
        print_json({"url": url, "username": username, "expires_at": token.expires_at})
    else:
        print(f"logged in to {url} as {username} until {cell(token.expires_at)}")
    return 0


def logout(args: argparse.Namespace) -> int:
    """Revoke on the broker first: the local copy goes only once the token is dead, or
    the broker says it already was; if the broker cannot be reached, it stays for a retry."""
    url = url_of(args)
    credentials = Credentials()
    login = credentials.get(url)
    if login is None:
        print(f"not logged in to {url}")
        return 0
    with management_client(args, login.token) as client:
        try:
            client.logout()
        except ApiError as exc:
            if exc.code is not ErrorCode.NOT_AUTHENTICATED:
                raise
    credentials.forget(url)
    print(f"logged out of {url}")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        user = client.whoami()
    if args.json:
        print_json(user)
    else:
        print_fields(
            [
                ("user", user.username),
                ("role", user.role),
                ("disabled", user.disabled),
                ("created", user.created_at),
                ("broker", url_of(args)),
            ]
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        users = client.list_users()
    if args.json:
        print_json(users)
    else:
        print_table(users, _USER_COLUMNS, empty="no users")
    return 0


def _set_disabled(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        user = client.update_user(args.name, disabled=args.disabled)
    if args.json:
        print_json(user)
    else:
        print(f"{'disabled' if user.disabled else 'enabled'} {user.username}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with logged_in(args) as client:
        client.delete_user(args.name)
    print(f"deleted user {args.name}")
    return 0


def _set_password(args: argparse.Namespace) -> int:
    """Offline: hash with the broker's own argon2id settings, write, revoke the tokens."""
    settings = load_settings({"data_dir": args.data_dir, "database_url": args.database_url})
    if settings.storage == "memory":
        raise CliError(detail="this broker keeps its accounts in memory (storage = memory)")
    password = _new_password()
    check_password(args.name, password)
    password_hash = SecretHasher().hash_now(password)
    if settings.database_url is not None:  # a cluster's database, named anywhere
        # imported here: the driver costs every other command its start-up time
        from buzon.store.postgres import set_password_hash as set_cluster_password

        revoked = asyncio.run(set_cluster_password(settings.database_url, args.name, password_hash))
        where = "the cluster's database"
    else:
        revoked = set_password_hash(settings.data_dir, args.name, password_hash)
        where = str(settings.data_dir)
    tokens = "token" if revoked == 1 else "tokens"
    print(f"new password set for {args.name} in {where}; {revoked} login {tokens} revoked")
    return 0


def _new_password() -> str:
    """Typed twice at a terminal, else the first line of stdin (UTF-8 text, as logins send)."""
    piped = not sys.stdin.isatty()
    password = read_secret("new password", stdin_flag="stdin", from_stdin=piped, confirm=True)
    if not password:
        raise CliError(detail="no new password on stdin (give it as the first line)")
    return password
