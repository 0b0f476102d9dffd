"""argon2id password hashes, computed a few at a time.

Each argon2id hash takes 64 MiB and a core for a moment. Logins run on a thread
pool of 40, so a burst of wrong passwords would otherwise hash 40 at once (2.5 GB);
a semaphore lets CONCURRENT_HASHES run and the rest wait their turn, and an attempt
that waits too long is answered "busy" rather than queued without end.
"""

import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from base.errors import DomainError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_LENGTH = 8
CONCURRENT_HASHES = 4
WAIT_SECONDS = 20
_turns = threading.BoundedSemaphore(CONCURRENT_HASHES)


class PasswordCheckBusy(DomainError):
    """Too many password checks are waiting; the user is asked to try again."""

    def __init__(self) -> None:
        super().__init__("login.busy")


def _one_at_a_turn() -> None:
    if not _turns.acquire(timeout=WAIT_SECONDS):
        raise PasswordCheckBusy()


def hash_password(password: str) -> str:
    _one_at_a_turn()
    try:
        return _hasher.hash(password)
    finally:
        _turns.release()


def verify_password(password_hash: str | None, password: str) -> bool:
    _one_at_a_turn()
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
    finally:
        _turns.release()


def generate_password() -> str:
    return secrets.token_urlsafe(12)
