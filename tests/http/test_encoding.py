"""Credentials and keys beyond ASCII work over HTTP as they do over STOMP."""

from __future__ import annotations

import httpx

from tests.http.helpers import Auth


async def test_basic_authentication_with_a_utf8_password(http: httpx.AsyncClient) -> None:
    password = "pässwört-ñandú"
    created = await http.post("/users", json={"username": "jürgen", "password": password})
    assert created.status_code == 400  # usernames are ASCII; passwords need not be
    created = await http.post("/users", json={"username": "jurgen", "password": password})
    assert created.status_code == 201
    me = await http.get("/users/me", auth=("jurgen", password))
    assert me.status_code == 200
    assert me.json()["username"] == "jurgen"
    wrong = await http.get("/users/me", auth=("jurgen", "passwort-nandu"))
    assert wrong.status_code == 401


async def test_malformed_basic_credentials_are_a_clear_401(http: httpx.AsyncClient) -> None:
    answer = await http.get("/users/me", headers={"Authorization": "Basic not-base64!"})
    assert answer.status_code == 401
    assert answer.json()["error"]["detail"] == "malformed Basic credentials"


async def test_a_utf8_access_key_opens_its_queue(http: httpx.AsyncClient, admin: Auth) -> None:
    key = "clé-secrète-42"
    created = await http.post("/queues", json={"name": "café", "access_key": key}, headers=admin)
    assert created.status_code == 400  # names are ASCII
    created = await http.post("/queues", json={"name": "cafe", "access_key": key}, headers=admin)
    assert created.status_code == 201
    await http.post("/users", json={"username": "bob", "password": "bob-password"})
    denied = await http.post(
        "/queues/cafe/messages",
        json={"body": "x"},
        auth=("bob", "bob-password"),
        headers={"X-Access-Key": "cle-secrete-42"},
    )
    assert denied.status_code == 403
    accepted = await http.post(
        "/queues/cafe/messages",
        json={"body": "x"},
        auth=("bob", "bob-password"),
        headers={b"X-Access-Key": key.encode()},
    )
    assert accepted.status_code == 201
