"""The transition table: directions, refusals and the state machine."""

from __future__ import annotations

import pytest

from buzon.errors import ErrorCode
from buzon.stomp import TRANSITIONS, Command, ConnState, Role
from buzon.stomp.states import SERVER_COMMANDS, StateMachine, refusal


def test_every_state_but_the_final_ones_has_a_row() -> None:
    for role in Role:
        assert set(TRANSITIONS[role]) == set(ConnState) - {ConnState.CLOSED, ConnState.FAILED}


def test_error_can_end_every_live_server_state() -> None:
    for state, row in TRANSITIONS[Role.SERVER].items():
        assert row[Command.ERROR] is ConnState.FAILED, state


def state_of(machine: StateMachine) -> ConnState:
    """Read the state through a call, so mypy does not keep an earlier narrowing."""
    return machine.state


def test_directions() -> None:
    server = StateMachine(Role.SERVER)
    assert not server.apply(Command.CONNECT, outgoing=True)  # servers never send CONNECT
    assert server.apply(Command.CONNECT, outgoing=False)
    assert server.state is ConnState.CONNECTING
    assert not server.apply(Command.CONNECTED, outgoing=False)
    assert server.apply(Command.CONNECTED, outgoing=True)
    assert state_of(server) is ConnState.CONNECTED
    client = StateMachine(Role.CLIENT)
    assert not client.apply(Command.CONNECT, outgoing=False)
    assert client.apply(Command.CONNECT, outgoing=True)
    assert not client.apply(Command.CONNECTED, outgoing=True)
    assert client.apply(Command.CONNECTED, outgoing=False)


@pytest.mark.parametrize("role", list(Role))
def test_session_commands_keep_the_state(role: Role) -> None:
    machine = StateMachine(role)
    machine.end(ConnState.CONNECTED)
    theirs = role is Role.SERVER
    for command in Command:
        if command in SERVER_COMMANDS or command in {
            Command.CONNECT,
            Command.STOMP,
            Command.DISCONNECT,
        }:
            continue
        assert machine.apply(command, outgoing=not theirs)
        assert machine.state is ConnState.CONNECTED


def test_final_states_allow_nothing() -> None:
    for role in Role:
        for final in (ConnState.CLOSED, ConnState.FAILED):
            machine = StateMachine(role)
            machine.end(final)
            for command in Command:
                assert not machine.apply(command, outgoing=True)
                assert not machine.apply(command, outgoing=False)
                assert machine.state is final


def test_refusal_codes() -> None:
    assert refusal(ConnState.AWAITING_CONNECT) is ErrorCode.NOT_CONNECTED
    assert refusal(ConnState.CONNECTED) is ErrorCode.UNEXPECTED_FRAME
