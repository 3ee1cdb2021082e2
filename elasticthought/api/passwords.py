"""Password hashing with scrypt (a memory-hard key-derivation function) and constant-time checks.

A stored hash is a string `scrypt$<n>$<r>$<p>$<salt hex>$<key hex>`; the clear password is
never stored or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

_N, _R, _P, _KEYLEN = 2**14, 8, 1, 32
_MAX_PASSWORD = 1024

# Verified (stored-hash, password) pairs, kept as digests so that repeated HTTP Basic requests do
# not pay the KDF each time. In memory only; cleared when it grows.
_verified: set[bytes] = set()
_verified_lock = threading.Lock()


def hash_password(password: str) -> str:
    """Derive a salted scrypt hash of `password`."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_KEYLEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    if not isinstance(password, str) or len(password) > _MAX_PASSWORD or not stored:
        return False
    memo = hashlib.sha256(stored.encode() + b"\0" + password.encode()).digest()
    with _verified_lock:
        if memo in _verified:
            return True
    try:
        scheme, n, r, p, salt_hex, key_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        key = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(key_hex) // 2,
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    ok = hmac.compare_digest(key, bytes.fromhex(key_hex))
    if ok:
        with _verified_lock:
            if len(_verified) > 10_000:
                _verified.clear()
            _verified.add(memo)
    return ok
