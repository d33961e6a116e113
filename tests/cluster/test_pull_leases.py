"""HTTP pull leases across nodes: behind a load balancer, the ack of a pulled message may
reach another node than the one that leased it; that node forwards it."""

from __future__ import annotations

from tests.cluster.nodes import (
    TIMEOUT,
    Cluster,
    admin_api,
    create_everywhere,
    queue_settled,
    within,
)


async def test_a_lease_taken_on_one_node_is_settled_through_another(cluster: Cluster) -> None:
    first, second = cluster.start("n1", "n2")
    await create_everywhere([first, second], "queues", "pulled")
    async with admin_api(first) as one, admin_api(second) as two:
        for n in range(3):
            sent = await one.post("/queues/pulled/messages", json={"body": f"m{n}"})
            assert sent.status_code == 201, sent.text
        # nobody holds them: they wait in the database, and any node's peek shows them
        peeked = await two.get("/queues/pulled/messages", params={"limit": 10})
        assert [m["body"] for m in peeked.json()["messages"]] == ["m0", "m1", "m2"]
        pulled = await one.post("/queues/pulled/pull", json={"max": 3, "lease_ms": 60_000})
        receipts = [message["receipt"] for message in pulled.json()["messages"]]
        assert len(receipts) == 3

        # nack one through the other node: it comes back, redelivered
        nacked = await two.post("/queues/pulled/nack", json={"receipts": receipts[:1]})
        assert nacked.status_code == 200, nacked.text
        again = await two.post(
            "/queues/pulled/pull", json={"max": 1, "lease_ms": 60_000, "wait_ms": 5_000}
        )
        [back] = again.json()["messages"]
        assert (back["body"], back["redelivered"]) == ("m0", True)

        # ack the rest through the node that did not lease them; the lease is gone after
        acked = await two.post(
            "/queues/pulled/ack", json={"receipts": [*receipts[1:], back["receipt"]]}
        )
        assert acked.status_code == 200, acked.text
        twice = await two.post("/queues/pulled/ack", json={"receipts": receipts[1:2]})
        assert twice.status_code == 404, twice.text
        assert twice.json()["error"]["code"] == "UNKNOWN_RECEIPT"

        # a receipt naming another node that holds no such lease is unknown there too
        forged = await two.post("/queues/pulled/ack", json={"receipts": ["1.not-a-lease"]})
        assert forged.status_code == 404, forged.text
        assert forged.json()["error"]["code"] == "UNKNOWN_RECEIPT"
    await queue_settled([first, second], "pulled")


async def test_a_forwarded_nack_keeps_what_it_asked(cluster: Cluster) -> None:
    first, second = cluster.start("n1", "n2")
    await create_everywhere([first, second], "queues", "rejects")
    async with admin_api(first) as one, admin_api(second) as two:
        policy = {"dead_letter_queue": "rejects"}
        made = await one.post("/queues", json={"name": "orders", "policy": policy})
        assert made.status_code == 201, made.text

        async def known() -> bool:
            return (await two.get("/queues/orders")).status_code == 200

        await within(TIMEOUT, known, "the second node knows queue orders")
        sent = await one.post("/queues/orders/messages", json={"body": "unpayable"})
        assert sent.status_code == 201, sent.text
        pulled = await one.post("/queues/orders/pull", json={"max": 1, "wait_ms": 5_000})
        [message] = pulled.json()["messages"]

        # refused through the node that does not hold the lease: dead-lettered, with why
        refusal = {"receipts": [message["receipt"]], "requeue": False, "error": "card declined"}
        nacked = await two.post("/queues/orders/nack", json=refusal)
        assert nacked.status_code == 200, nacked.text

        async def dead_lettered() -> bool:
            peeked = await one.get("/queues/rejects/messages")
            return bool(peeked.json()["messages"])

        await within(TIMEOUT, dead_lettered, "the refused message reaches the dead letters")
        [dead] = (await one.get("/queues/rejects/messages")).json()["messages"]
        assert dead["body"] == "unpayable"
        assert dead["headers"]["x-dead-letter-reason"] == "rejected"
        assert dead["headers"]["x-last-error"] == "card declined"
