"""buzon: a message broker for Python teams (STOMP 1.2 queues and channels).

Importing ``buzon`` stays light: it loads the error registry only, never the server.
"""

from buzon.errors import BuzonError, ErrorCode

__version__ = "0.1.0"

__all__ = ["BuzonError", "ErrorCode", "__version__"]
