"""``buzon channel create --type``, ``bind``, ``unbind`` and ``bindings`` against a real
broker, with messages routed to the bound queues."""

from __future__ import annotations

import json
from collections.abc import Callable

from buzon.client import ManagementClient
from tests.cli.helpers import Cli

PASSWORD = "cli-binding-password"


def test_a_topic_channel_feeds_the_queues_bound_to_it(
    admin_client: ManagementClient, cli_for: Callable[[str], Cli]
) -> None:
    admin_client.register("binder", PASSWORD)
    cli = cli_for("binder")
    cli.login("binder", PASSWORD)
    created = cli.ok("channel", "create", "events", "--type", "topic")
    assert created.strip() == "created channel events (/topic/events), routing by topic keys"
    for queue in ("audit", "alerts"):
        cli.ok("queue", "create", queue)
    assert "bound queue audit" in cli.ok("channel", "bind", "events", "audit", "--key", "#")
    bound = json.loads(cli.ok("channel", "bind", "events", "alerts", "--key", "*.error", "--json"))
    assert (bound["queue"], bound["routing_key"], bound["active"]) == ("alerts", "*.error", True)
    table = cli.ok("channel", "bindings", "events")
    assert "audit" in table
    assert "*.error" in table
    info = json.loads(cli.ok("channel", "info", "events", "--json"))
    assert (info["type"], info["bindings"]) == ("topic", 2)
    with ManagementClient(admin_client.url, basic=("binder", PASSWORD)) as client:
        client.publish("/topic/events", "not routed to alerts")
        assert [m.text for m in client.pull("audit", max_messages=5)] == ["not routed to alerts"]
        assert client.pull("alerts", max_messages=5) == []
        client.publish("/topic/events/db.error", "over HTTP, keyed")  # the key as a query
        cli.ok("publish", "--channel", "events", "--routing-key", "app.error", "from the CLI")
        cli.ok("publish", "--channel", "events", "--routing-key", "app.info", "audit only")
        expected = ["over HTTP, keyed", "from the CLI"]
        assert [m.text for m in client.pull("alerts", max_messages=5)] == expected
        assert [m.text for m in client.pull("audit", max_messages=5)] == [*expected, "audit only"]
    keyed_queue = cli.fails("publish", "--queue", "audit", "--routing-key", "x", "no")
    assert "--routing-key is for channels" in keyed_queue
    assert "unbound" in cli.ok("channel", "unbind", "events", "alerts", "--key", "*.error")
    listed = json.loads(cli.ok("channel", "bindings", "events", "--json"))
    assert [(b["queue"], b["routing_key"]) for b in listed] == [("audit", "#")]
    failed = cli.fails("channel", "unbind", "events", "alerts", "--key", "*.error")
    assert "not bound" in failed
    wrong = cli.fails("channel", "create", "events", "--type", "direct")
    assert "topic" in wrong
    assert "direct" in wrong
