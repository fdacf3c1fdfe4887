"""Durations (`15m`, `1h30m`) and sizes (`5MB`) as the config writes them, both ways."""

from __future__ import annotations

import math
import re
from datetime import timedelta

# Longer than this is a typo or an attack, never an interval: it also keeps every duration far
# inside what timedelta and the scheduler's datetime arithmetic can hold.
MAX_DURATION = timedelta(days=365)
MAX_SIZE = 1000**3  # a body cap above 1 GB would let one fetch take the host's memory

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


_SPELLED_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(duration: timedelta) -> str:
    """A duration spelled as the config writes it (`15m`, `1h30m`, `1d`), which
    parse_duration reads back to the same value."""
    milliseconds = round(duration.total_seconds() * 1000)
    seconds, rest = divmod(milliseconds, 1000)
    parts: list[str] = []
    for unit, size in _SPELLED_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts) or "0s"


def parse_duration(value: object) -> timedelta:
    """`15m`, `1h30m`, `20s`, `1d`; a bare number means seconds. At most MAX_DURATION."""
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if not text or _DURATION_PART.sub("", text):
            raise ValueError(f"{shown(value)} is not a duration; use 10m or 1h")
        # float() of a very long number is inf rather than an error; the bound below sees it.
        seconds = sum(
            float(number) * _DURATION_UNITS[unit.lower()]
            for number, unit in _DURATION_PART.findall(text)
        )
    else:
        raise ValueError("must be a duration such as 10m or 1h")
    if isinstance(seconds, float) and math.isnan(seconds):
        raise ValueError(f"{value!r} is not a duration; use 10m or 1h")
    # Compared before any conversion: float() of a huge int raises, timedelta() overflows.
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{shown(value)} is too long for a duration; use at most 365d")
    if seconds < 0:
        raise ValueError("must be longer than zero")
    return timedelta(seconds=seconds)


def parse_size(value: object) -> int:
    """`5MB`, `512KiB`, or a number of bytes. At most MAX_SIZE."""
    if isinstance(value, int) and not isinstance(value, bool):
        size: float = value
    else:
        match = _SIZE.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{value!r} is not a size; use 512KB or 5MB")
        number, unit = match.groups()
        size = float(number) * _SIZE_UNITS[(unit or "b").lower()]
    if size > MAX_SIZE:
        raise ValueError(f"{shown(value)} is too large for a size; use at most 1GB")
    return int(size)


def shown(value: object) -> str:
    """A value as an error message quotes it: a number of a thousand digits would make the
    message unreadable."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
