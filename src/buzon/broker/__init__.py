"""The buzon engine: queues, channels, subscriptions, acks and flow control, without I/O.

Front ends open a :class:`Session` per client with :meth:`Broker.open_session`, drive it
with commands (publish, subscribe, ack, ...) and receive deliveries through their
:class:`DeliverySink`.
"""

from buzon.broker.addresses import Address, address, parse_address, parse_destination
from buzon.broker.channel import Binding, Channel
from buzon.broker.config import BrokerConfig, SlowConsumerPolicy
from buzon.broker.engine import Broker
from buzon.broker.leases import Lease
from buzon.broker.message import (
    ACCEPT,
    NO_OPTIONS,
    REJECT,
    RELEASE,
    DeliverySink,
    Disposition,
    Headers,
    Message,
    Outcome,
    PublishOptions,
)
from buzon.broker.queue import Queue
from buzon.broker.session import Session
from buzon.broker.stats import BrokerStats, ChannelStats, QueueStats, SessionStats
from buzon.broker.subscription import AckMode

__all__ = [
    "ACCEPT",
    "NO_OPTIONS",
    "REJECT",
    "RELEASE",
    "AckMode",
    "Address",
    "Binding",
    "Broker",
    "BrokerConfig",
    "BrokerStats",
    "Channel",
    "ChannelStats",
    "DeliverySink",
    "Disposition",
    "Headers",
    "Lease",
    "Message",
    "Outcome",
    "PublishOptions",
    "Queue",
    "QueueStats",
    "Session",
    "SessionStats",
    "SlowConsumerPolicy",
    "address",
    "parse_address",
    "parse_destination",
]
