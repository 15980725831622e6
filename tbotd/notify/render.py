"""How a notice reads on a phone (pure): a short title, the one-line text, then its fields.

    title:  [usdt-directional] WARNING stop_loss
    body:   BTC/USDT:USDT: stop-loss hit, long 0.01 at 49000.0; PnL -10.2 USDT (fees 0.5)
            reason: stop_loss
            side: long
            ...
            time: 2025-01-01T00:05:00+00:00

The first body line is the message; ``key: value`` lines follow, so a webhook consumer can
parse the fields without a second format.
"""

from __future__ import annotations

from tbotd.domain.notices import Notice, Severity
from tbotd.notify.targets import Message


def render(notice: Notice, instance: str, suppressed: int = 0) -> Message:
    """The message for ``notice`` from ``instance``; ``suppressed`` rate-limited ones before."""
    title = f"[{instance}] {notice.severity.upper()} {notice.kind}"
    lines = [notice.text]
    if notice.symbol:
        lines.append(f"symbol: {notice.symbol}")
    lines += [f"{k}: {v}" for k, v in notice.fields]
    lines.append(f"time: {notice.at.isoformat()}")
    if suppressed:
        lines.append(f"({suppressed} earlier message(s) dropped by the hourly limit)")
    return Message(title, "\n".join(lines), notice.severity)


def parse_body(body: str) -> tuple[str, dict[str, str]]:
    """The text and fields of a rendered body (what a webhook consumer, or a test, reads)."""
    first, *rest = body.splitlines() or [""]
    fields = {}
    for line in rest:
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    return first, fields


__all__ = ["Message", "Severity", "parse_body", "render"]
