"""Publisher confirms of a channel that is gone: its number may be open again at once."""

from __future__ import annotations

from pamqp import commands

from buzon.server.amqp_channel import AmqpChannel
from buzon.store import Ticket
from tests.amqp.helpers import open_channel, open_connection, read_frames


def _channel(conn: object) -> AmqpChannel:
    channel = AmqpChannel(1, conn, lambda _: None, lambda *_: None, 1000)  # type: ignore[arg-type]
    channel.select_confirms("c1", lambda _: None)
    return channel


def test_a_closed_channels_pending_confirms_never_reach_the_channel_reopened_with_its_number() -> (
    None
):
    conn = open_connection()
    open_channel(conn, 1)
    old = _channel(conn)
    write = Ticket()
    for _ in range(50):
        old.confirm(write, old.next_publish())  # waiting for the write
    old.close()  # the client closed channel 1 ...
    conn.data_to_send()
    new = _channel(conn)  # ... and opened it again: 3 publishes, none on disk yet
    later = Ticket()
    for _ in range(3):
        new.confirm(later, new.next_publish())
    write.resolve()
    old.send_confirms()
    assert read_frames(conn.data_to_send()) == []  # not "up to tag 50" for the new channel
    later.resolve()
    new.send_confirms()
    ((_, ack),) = read_frames(conn.data_to_send())
    assert isinstance(ack, commands.Basic.Ack)
    assert (ack.delivery_tag, ack.multiple) == (3, True)
