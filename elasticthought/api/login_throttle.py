"""Password logins under attack: failed logins throttled, password checks bounded.

Guessing passwords over HTTP Basic costs the attacker one request per guess and the server one
scrypt run (16 MiB, tens of ms). So each failed login counts against its (client address,
username) pair and its client address (`limits.LOGIN_FAILURES_PER_USER`,
`LOGIN_FAILURES_PER_ADDRESS` within `LOGIN_FAILURE_WINDOW` seconds); past either, that client's
logins answer 429 with Retry-After before the password is looked at, until the oldest failure
leaves the window. A correct password clears its pair's count. Other clients, and API tokens,
are not affected. And at most `PASSWORD_CHECKS_AT_ONCE` scrypt runs go at once in a process;
one that waits more than `PASSWORD_CHECK_WAIT` seconds answers 503 with Retry-After.

In memory, per server process (several `serve` processes each keep their own counts).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from elasticthought import limits
from elasticthought.api.errors import ApiError


class FailedLogins:
    """Failure times by key, newest keys last; at most `max_keys` keys are kept."""

    def __init__(self, allowed: int, window: float, max_keys: int) -> None:
        self.allowed = allowed
        self.window = window
        self.max_keys = max_keys
        self._times: OrderedDict[object, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_seconds(self, key: object, now: float) -> float:
        """0 when `key` may try now, else the seconds until its oldest failure expires."""
        with self._lock:
            times = self._times.get(key)
            if times is None:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._times[key]
                return 0.0
            return times[0] + self.window - now if len(times) >= self.allowed else 0.0

    def failed(self, key: object, now: float) -> None:
        with self._lock:
            times = self._times.pop(key, None) or deque(maxlen=self.allowed)
            times.append(now)
            self._times[key] = times  # newest last
            while len(self._times) > self.max_keys:
                self._times.popitem(last=False)

    def clear(self, key: object) -> None:
        with self._lock:
            self._times.pop(key, None)


_per_user = FailedLogins(
    limits.LOGIN_FAILURES_PER_USER, limits.LOGIN_FAILURE_WINDOW, limits.LOGIN_THROTTLE_KEYS
)
_per_address = FailedLogins(
    limits.LOGIN_FAILURES_PER_ADDRESS, limits.LOGIN_FAILURE_WINDOW, limits.LOGIN_THROTTLE_KEYS
)
_checks = threading.BoundedSemaphore(limits.PASSWORD_CHECKS_AT_ONCE)


def check_login(address: str, username: str, verify: Callable[[], bool]) -> bool:
    """`verify()` (the password check) for a Basic login of `username` from `address`, unless
    that client failed too often (429 first); failures and successes are counted."""
    now = time.monotonic()
    pair = (address, username.casefold())
    wait = max(_per_user.wait_seconds(pair, now), _per_address.wait_seconds(address, now))
    if wait > 0:
        raise ApiError(
            429,
            f"too many failed logins from your address; try again in {int(wait) + 1} s "
            "(or use an API token)",
            retry_after=wait,
        )
    with _password_check():
        ok = verify()
    if ok:
        _per_user.clear(pair)
    else:
        now = time.monotonic()
        _per_user.failed(pair, now)
        _per_address.failed(address, now)
    return ok


@contextmanager
def _password_check() -> Iterator[None]:
    if not _checks.acquire(timeout=limits.PASSWORD_CHECK_WAIT):
        raise ApiError(503, "too many password checks at once; try again", retry_after=1)
    try:
        yield
    finally:
        _checks.release()
