"""Wire types shared by the prediction schema and its per-model answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

from tbotd.domain.values import ms_to_datetime


def _parse_time(value: Any) -> Any:
    """Accept integer epoch milliseconds or an ISO-8601 string that carries a time zone."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            return ms_to_datetime(value)
        except (OverflowError, OSError) as e:
            raise ValueError(f"timestamp {value} is out of range") from e
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("timestamp must carry a time zone (UTC)")
        return parsed
    return value


UtcTime = Annotated[datetime, BeforeValidator(_parse_time)]
