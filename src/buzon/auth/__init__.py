"""Who may connect: password hashing and the credential check used by every surface."""

from buzon.auth.credentials import Credentials
from buzon.auth.passwords import hash_password, verify_password

__all__ = ["Credentials", "hash_password", "verify_password"]
