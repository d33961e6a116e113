"""The buzon engine: queues, channels, subscriptions, acks and flow control, without I/O.

Front ends open a :class:`Session` per client with :meth:`Broker.open_session`, drive it
with commands (publish, subscribe, ack, ...) and receive :class:`Delivery` records through
their :class:`DeliverySink`.
"""

from buzon.broker.config import BrokerConfig, SlowConsumerPolicy
from buzon.broker.destinations import DestinationKind, parse_destination
from buzon.broker.engine import Broker
from buzon.broker.message import Delivery, DeliverySink, Headers, Message
from buzon.broker.session import Session
from buzon.broker.stats import BrokerStats, ChannelStats, QueueStats, SessionStats
from buzon.broker.subscription import AckMode

__all__ = [
    "AckMode",
    "Broker",
    "BrokerConfig",
    "BrokerStats",
    "ChannelStats",
    "Delivery",
    "DeliverySink",
    "DestinationKind",
    "Headers",
    "Message",
    "QueueStats",
    "Session",
    "SessionStats",
    "SlowConsumerPolicy",
    "parse_destination",
]
