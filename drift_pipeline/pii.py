"""Personal identifiers kept only as salted hashes (emails, external ids, erased contacts)."""

from __future__ import annotations

import hashlib


def hash_pii(value, salt: str) -> str | None:
    """Salted SHA-256 of an identifier (lower-cased, trimmed): joinable, not reversible."""
    if value is None or str(value).strip() == "":
        return None
    normalized = str(value).strip().lower()
    return hashlib.sha256(f"{salt}:{normalized}".encode()).hexdigest()
