"""Users, tokens, access decisions and secret hashing, on top of the store."""

from buzon.auth.access import Action, Decision, Principal, decide
from buzon.auth.keys import AccessKeys
from buzon.auth.passwords import SecretHasher
from buzon.auth.ratelimit import Backoff, GuessLimiter, GuessLimits
from buzon.auth.tokens import Tokens
from buzon.auth.users import Accounts, principal_of

__all__ = [
    "AccessKeys",
    "Accounts",
    "Action",
    "Backoff",
    "Decision",
    "GuessLimiter",
    "GuessLimits",
    "Principal",
    "SecretHasher",
    "Tokens",
    "decide",
    "principal_of",
]
