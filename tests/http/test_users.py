"""Accounts over HTTP: register, log in and out, who-am-I, and what admins do to users."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from buzon.auth import SecretHasher
from buzon.errors import ErrorCode
from buzon.server.app import BuzonServer
from tests.http.helpers import (
    USER_PASSWORD,
    Auth,
    admin_auth,
    api,
    bearer,
    create,
    error_of,
    inspect,
    login,
    new_user,
    until_slowed,
)
from tests.server.harness import ADMIN, PASSWORD, running_server


async def test_register_log_in_who_am_i_and_log_out(http: httpx.AsyncClient) -> None:
    registered = await http.post("/users", json={"username": "alice", "password": USER_PASSWORD})
    assert registered.status_code == 201
    shown = registered.json()
    assert {k: v for k, v in shown.items() if k != "created_at"} == {
        "username": "alice",
        "role": "user",
        "disabled": False,
    }
    assert abs(datetime.fromisoformat(shown["created_at"]).timestamp() - time.time()) < 60
    assert USER_PASSWORD not in registered.text

    session = await http.post("/sessions", json={"username": "alice", "password": USER_PASSWORD})
    assert session.status_code == 201
    token = session.json()["token"]
    assert token.startswith("bzt_")
    expires_at = datetime.fromisoformat(session.json()["expires_at"]).timestamp()
    assert abs(expires_at - (time.time() + 24 * 3600)) < 60

    me = await http.get("/users/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json() == shown

    assert (await http.delete("/sessions/current", headers=bearer(token))).status_code == 204
    after = await http.get("/users/me", headers=bearer(token))
    error_of(after, ErrorCode.NOT_AUTHENTICATED)
    assert after.headers["www-authenticate"] == 'Bearer realm="buzon"'


async def test_basic_authentication_works_but_cannot_log_out(http: httpx.AsyncClient) -> None:
    await new_user(http, "bruno")
    me = await http.get("/users/me", auth=("bruno", USER_PASSWORD))
    assert me.json()["username"] == "bruno"
    logout = await http.delete("/sessions/current", auth=("bruno", USER_PASSWORD))
    assert "bearer token" in error_of(logout, ErrorCode.NOT_AUTHENTICATED)
    wrong = await http.get("/users/me", auth=("bruno", "not the password"))
    error_of(wrong, ErrorCode.AUTH_FAILED)


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("ab", USER_PASSWORD, ErrorCode.INVALID_USERNAME),
        ("Alice", USER_PASSWORD, ErrorCode.INVALID_USERNAME),
        ("has space", USER_PASSWORD, ErrorCode.INVALID_USERNAME),
        ("carol", "short", ErrorCode.WEAK_PASSWORD),
        ("carolcarol", "CAROLCAROL", ErrorCode.WEAK_PASSWORD),
        ("carol", "x" * 1025, ErrorCode.BAD_REQUEST),
        ("x" * 65, USER_PASSWORD, ErrorCode.BAD_REQUEST),
    ],
)
async def test_registration_refuses_bad_names_and_weak_passwords(
    http: httpx.AsyncClient, admin: Auth, username: str, password: str, code: ErrorCode
) -> None:
    response = await http.post("/users", json={"username": username, "password": password})
    error_of(response, code)
    listed = await http.get("/users", headers=admin)
    assert [user["username"] for user in listed.json()] == [ADMIN]


async def test_a_taken_username_is_a_conflict(http: httpx.AsyncClient) -> None:
    await new_user(http, "dave")
    again = await http.post("/users", json={"username": "dave", "password": "another password"})
    error_of(again, ErrorCode.USERNAME_TAKEN)
    await login(http, "dave")  # the first account's password still works


async def test_only_admins_create_admins(http: httpx.AsyncClient, admin: Auth) -> None:
    wish = {"username": "eve", "password": USER_PASSWORD, "role": "admin"}
    error_of(await http.post("/users", json=wish), ErrorCode.ACCESS_DENIED)
    user = await new_user(http, "frank")
    error_of(await http.post("/users", json=wish, headers=user), ErrorCode.ACCESS_DENIED)
    made = await http.post("/users", json=wish, headers=admin)
    assert made.status_code == 201
    assert made.json()["role"] == "admin"
    eve = await login(http, "eve")
    assert (await http.get("/users", headers=eve)).status_code == 200


async def test_closed_registration_leaves_account_creation_to_admins(
    hasher: SecretHasher,
) -> None:
    async with running_server(hasher, registration=False) as server, api(server.http_port) as http:
        alice = {"username": "alice", "password": USER_PASSWORD}
        error_of(await http.post("/users", json=alice), ErrorCode.REGISTRATION_CLOSED)
        admin = await admin_auth(http)
        assert (await http.post("/users", json=alice, headers=admin)).status_code == 201
        user = await login(http, "alice")
        bob = {"username": "bob", "password": USER_PASSWORD}
        error_of(await http.post("/users", json=bob, headers=user), ErrorCode.REGISTRATION_CLOSED)


async def test_failed_logins_never_say_which_field_was_wrong(http: httpx.AsyncClient) -> None:
    await new_user(http, "gina")
    wrong_password = await http.post(
        "/sessions", json={"username": "gina", "password": "not her password"}
    )
    unknown_user = await http.post(
        "/sessions", json={"username": "nobody-here", "password": USER_PASSWORD}
    )
    for response in (wrong_password, unknown_user):
        assert error_of(response, ErrorCode.AUTH_FAILED) == ""
    assert wrong_password.content == unknown_user.content


async def test_failed_logins_slow_that_username_from_that_address_only(
    http: httpx.AsyncClient, server: BuzonServer
) -> None:
    await new_user(http, "hugo")
    await new_user(http, "iris")
    hugo = {"username": "hugo", "password": USER_PASSWORD}
    await until_slowed(
        lambda: http.post("/sessions", json={**hugo, "password": "guess"}),
        ErrorCode.AUTH_FAILED,
    )
    refused = await http.post("/sessions", json=hugo)
    assert error_of(refused, ErrorCode.TOO_MANY_ATTEMPTS).startswith("retry in ")
    assert 1 <= int(refused.headers["retry-after"]) <= 300
    async with api(server.http_port, source="127.0.0.2") as elsewhere:
        await login(elsewhere, "hugo")  # never locked out from everywhere
    await login(http, "iris")  # another user from the same address is not affected


async def test_failed_logins_for_made_up_names_never_shut_out_a_real_user_there(
    http: httpx.AsyncClient, server: BuzonServer
) -> None:
    await new_user(http, "jack")
    for attempt in range(55):
        wrong = await http.post(
            "/sessions", json={"username": f"made-up-{attempt}", "password": "guess"}
        )
        error_of(wrong, ErrorCode.AUTH_FAILED)
    await login(http, "jack")
    # past its budget the address slows names that fail there themselves
    wrong = await http.post("/sessions", json={"username": "jack", "password": "guess"})
    error_of(wrong, ErrorCode.AUTH_FAILED)
    refused = await http.post("/sessions", json={"username": "jack", "password": USER_PASSWORD})
    assert error_of(refused, ErrorCode.TOO_MANY_ATTEMPTS).startswith("retry in ")
    async with api(server.http_port, source="127.0.0.2") as elsewhere:
        await login(elsewhere, "jack")


async def test_only_admins_list_users(http: httpx.AsyncClient, admin: Auth) -> None:
    user = await new_user(http, "kate")
    await new_user(http, "liam")
    listed = await http.get("/users", headers=admin)
    assert listed.status_code == 200
    assert [(u["username"], u["role"]) for u in listed.json()] == [
        (ADMIN, "admin"),
        ("kate", "user"),
        ("liam", "user"),
    ]
    error_of(await http.get("/users", headers=user), ErrorCode.ACCESS_DENIED)
    error_of(await http.get("/users"), ErrorCode.NOT_AUTHENTICATED)


async def test_disabling_a_user_ends_their_tokens_and_logins_until_enabled(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    token = await new_user(http, "mona")
    disabled = await http.patch("/users/mona", json={"disabled": True}, headers=admin)
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    error_of(await http.get("/users/me", headers=token), ErrorCode.NOT_AUTHENTICATED)
    right = await http.post("/sessions", json={"username": "mona", "password": USER_PASSWORD})
    error_of(right, ErrorCode.ACCOUNT_DISABLED)
    wrong = await http.post("/sessions", json={"username": "mona", "password": "a guess!"})
    error_of(wrong, ErrorCode.AUTH_FAILED)  # only the right password learns it is disabled

    enabled = await http.patch("/users/mona", json={"disabled": False}, headers=admin)
    assert enabled.json()["disabled"] is False
    again = await login(http, "mona")
    assert (await http.get("/users/me", headers=again)).json()["username"] == "mona"


async def test_an_admin_changes_roles(http: httpx.AsyncClient, admin: Auth) -> None:
    user = await new_user(http, "nina")
    promoted = await http.patch("/users/nina", json={"role": "admin"}, headers=admin)
    assert promoted.json()["role"] == "admin"
    assert (await http.get("/users", headers=user)).status_code == 200
    demoted = await http.patch("/users/nina", json={"role": "user"}, headers=admin)
    assert demoted.json()["role"] == "user"
    error_of(await http.get("/users", headers=user), ErrorCode.ACCESS_DENIED)


async def test_users_cannot_manage_users(http: httpx.AsyncClient) -> None:
    user = await new_user(http, "oscar")
    await new_user(http, "pia")
    for response in (
        await http.patch("/users/pia", json={"disabled": True}, headers=user),
        await http.patch("/users/oscar", json={"role": "admin"}, headers=user),
        await http.delete("/users/pia", headers=user),
    ):
        error_of(response, ErrorCode.ACCESS_DENIED)
    await login(http, "pia")


async def test_unknown_users_are_not_found(http: httpx.AsyncClient, admin: Auth) -> None:
    patched = await http.patch("/users/ghost", json={"disabled": True}, headers=admin)
    assert "ghost" in error_of(patched, ErrorCode.USER_NOT_FOUND)
    error_of(await http.delete("/users/ghost", headers=admin), ErrorCode.USER_NOT_FOUND)


async def test_deleting_a_user_ends_their_access_but_keeps_their_queues(
    http: httpx.AsyncClient, admin: Auth
) -> None:
    token = await new_user(http, "quinn")
    await create(http, token, "queues", "quinns-jobs")
    assert (await http.delete("/users/quinn", headers=admin)).status_code == 204
    error_of(await http.get("/users/me", headers=token), ErrorCode.NOT_AUTHENTICATED)
    relogin = await http.post("/sessions", json={"username": "quinn", "password": USER_PASSWORD})
    error_of(relogin, ErrorCode.AUTH_FAILED)
    assert (await inspect(http, admin, "queues", "quinns-jobs"))["owner"] is None
    error_of(await http.delete("/users/quinn", headers=admin), ErrorCode.USER_NOT_FOUND)

    # the name is free again, and the new account does not inherit the old one's queue
    newcomer = await new_user(http, "quinn")
    refused = await http.delete("/queues/quinns-jobs", headers=newcomer)
    error_of(refused, ErrorCode.ACCESS_DENIED)


async def test_the_last_enabled_admin_stays(http: httpx.AsyncClient, admin: Auth) -> None:
    for response in (
        await http.patch(f"/users/{ADMIN}", json={"disabled": True}, headers=admin),
        await http.patch(f"/users/{ADMIN}", json={"role": "user"}, headers=admin),
        await http.delete(f"/users/{ADMIN}", headers=admin),
    ):
        error_of(response, ErrorCode.LAST_ADMIN)
    assert (await http.get("/users/me", headers=admin)).json()["role"] == "admin"

    made = await http.post(
        "/users",
        json={"username": "rita", "password": USER_PASSWORD, "role": "admin"},
        headers=admin,
    )
    assert made.status_code == 201
    rita = await login(http, "rita")
    assert (await http.patch(f"/users/{ADMIN}", json={"disabled": True}, headers=rita)).is_success
    error_of(await http.delete("/users/rita", headers=rita), ErrorCode.LAST_ADMIN)
    assert (await http.delete(f"/users/{ADMIN}", headers=rita)).status_code == 204
    refused = await http.post("/sessions", json={"username": ADMIN, "password": PASSWORD})
    error_of(refused, ErrorCode.AUTH_FAILED)
