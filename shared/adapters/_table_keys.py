"""Key and value encoding for the Table Storage state store (pure functions).

Keys: PartitionKey and RowKey must not contain ``/ \\ # ?`` or control characters and are at
most 1 KiB. ``escape_key`` keeps ``[A-Za-z0-9._-]`` and writes every other character as ``~``
plus the hex of its UTF-8 bytes; ``~`` itself is escaped, so the mapping is injective.

Partitions: a person's rows live in a partition that holds a contiguous range of
``MARKETO_BUCKET`` Marketo ids, so a batch read of persons created close together is a few
queries, and a query that scans one partition scans at most that many rows. Dynamics records
are spread over 256 partitions per entity by a hash of the id (Dataverse GUIDs are not
uniformly distributed in any one position).

Values: a string property holds at most 64 KiB of UTF-16. Longer texts are split across
numbered properties (never truncated); ``MAX_TEXT_BYTES`` keeps the entity under its 1 MiB cap.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping

from shared.adapters._tables_errors import SERVICE
from shared.errors import PermanentError

MARKETO_BUCKET = 1000
DYNAMICS_BUCKETS_HEX = 2  # 256 partitions per entity
MAX_KEY_CHARS = 1024

# 16,000 code points are at most 32,000 UTF-16 code units = 64,000 bytes < 64 KiB.
CHUNK_CHARS = 16_000
MAX_TEXT_BYTES = 900_000  # leaves room for the other properties under the 1 MiB entity cap

# Microseconds at 9999-12-31; an inverted time key sorts newest first and stays 17 digits.
_MAX_MICROS = 253_402_300_799_999_999
_SAFE = frozenset(string.ascii_letters + string.digits + "._-")


def escape_key(value: str) -> str:
    out: list[str] = []
    for char in value:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"~{byte:02x}" for byte in char.encode("utf-8"))
    key = "".join(out)
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"key too long for Table Storage ({len(key)} > {MAX_KEY_CHARS} characters)")
    return key


def marketo_row(marketo_id: int) -> str:
    if marketo_id < 0:
        raise ValueError(f"Marketo ids are not negative: {marketo_id}")
    return f"{marketo_id:012d}"


def marketo_partition(kind: str, marketo_id: int) -> str:
    """``kind`` separates row families that share a table (``m`` for links by person)."""
    return f"{kind}{marketo_id // MARKETO_BUCKET:09d}"


def dynamics_partition(entity: str, dynamics_key: str) -> str:
    digest = hashlib.sha256(dynamics_key.encode("utf-8")).hexdigest()[:DYNAMICS_BUCKETS_HEX]
    return f"d-{escape_key(entity)}-{digest}"


def newest_first(micros: int, sequence: int = 0) -> str:
    """A RowKey prefix that sorts later times (and, at one time, later sequence numbers) first."""
    return f"{_MAX_MICROS - micros:018d}-{999_999 - sequence:06d}"


def utf16_bytes(text: str) -> int:
    return len(text.encode("utf-16-le"))


def split_text(name: str, text: str) -> dict[str, str | int]:
    """Properties ``name0``, ``name1``, ... and ``nameChunks`` holding ``text``."""
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    props: dict[str, str | int] = {f"{name}{i}": chunk for i, chunk in enumerate(chunks)}
    props[f"{name}Chunks"] = len(chunks)
    return props


def sized_text(name: str, text: str, what: str) -> dict[str, str | int]:
    """:func:`split_text`, refusing (never truncating) a text too large for an entity."""
    size = utf16_bytes(text)
    if size > MAX_TEXT_BYTES:
        raise PermanentError(
            f"{what} is too large for Table Storage ({size} bytes of UTF-16, limit {MAX_TEXT_BYTES})",
            service=SERVICE,
            code="EntityTooLarge",
        )
    return split_text(name, text)


def join_text(name: str, entity: Mapping[str, object]) -> str:
    count = entity.get(f"{name}Chunks")
    if not isinstance(count, int):
        raise ValueError(f"entity has no {name}Chunks property")
    parts = [entity.get(f"{name}{i}") for i in range(count)]
    if not all(isinstance(part, str) for part in parts):
        raise ValueError(f"entity is missing chunks of {name}")
    return "".join(str(part) for part in parts)
