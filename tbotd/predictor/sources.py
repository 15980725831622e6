"""The prediction chain's state, watched for changes: "ML down" and "ML back" (pure).

The chain's state after a cycle is the worst source any symbol got (remote < local-gpu <
local-cpu < neutral): one symbol on the fallback is already a degraded service. A change is
reported once, with the failures' codes (never their text: a service's error may quote a
secret), and whether the new state is the expected one (the best configured source). Also the
two small judgements the chain makes about a failure: how to describe it in one line, and
whether a history one local model refused is hopeless for the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbotd.domain.enums import PredictionSource
from tbotd.monitoring.health import PER_SYMBOL_REASONS
from tbotd.ops.logs import get_logger
from tbotd.predictor.outcome import PredictionOutcome, SourceFailure

log = get_logger(__name__)
ORDER = (
    PredictionSource.REMOTE,
    PredictionSource.LOCAL_GPU,
    PredictionSource.LOCAL_CPU,
    PredictionSource.NEUTRAL,
)


@dataclass(frozen=True, slots=True)
class SourceChange:
    """The ``ml-source`` event: its message and data."""

    message: str
    data: Mapping[str, Any]


class SourceWatch:
    """Remembers the chain's last state; :meth:`observe` says when it changed."""

    def __init__(self, expected: PredictionSource) -> None:
        self.expected = expected
        self.state: PredictionSource | None = None

    def observe(self, outcomes: Mapping[str, PredictionOutcome]) -> SourceChange | None:
        """The change this cycle's outcomes make, if any (logged once)."""
        if not outcomes:
            return None
        worst = max(outcomes.values(), key=lambda o: ORDER.index(o.source))
        if worst.source is self.state:
            return None
        previous, self.state = self.state, worst.source
        expected = worst.source is self.expected
        reason = ", ".join(worst.reasons)
        before = previous.value if previous is not None else "none"
        (log.info if expected else log.warning)(
            "ML source changed", source=worst.source.value, previous=before, reason=reason or None
        )
        return SourceChange(
            f"ML source {before} -> {worst.source.value}" + (f" ({reason})" if reason else ""),
            {
                "source": worst.source.value,
                "previous": "" if previous is None else previous.value,
                "expected": expected,
                "reason": reason,
            },
        )


def whole_source_failures(
    previous: Mapping[str, tuple[int, SourceFailure]],
    failures: Iterable[Iterable[SourceFailure]],
) -> dict[str, tuple[int, SourceFailure]]:
    """Per source that failed as a whole this cycle (not for one symbol's own reason, see
    :data:`~tbotd.monitoring.health.PER_SYMBOL_REASONS`): how many cycles in a row, and the
    failure — what the health states call "failed"."""
    now: dict[str, SourceFailure] = {}
    for per_symbol in failures:
        for f in per_symbol:
            if f.reason not in PER_SYMBOL_REASONS:
                now.setdefault(f.source, f)
    return {source: (previous.get(source, (0, f))[0] + 1, f) for source, f in now.items()}


def describe_error(error: BaseException) -> str:
    """``Type: message (file.py:line)`` — where it was raised, without rendering a traceback.

    A full traceback (rich, with locals, on a console) can take longer than the deadline, and
    these lines are logged inside it.
    """
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" ({Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})" if tb else ""
    return f"{type(error).__name__}: {error}{where}"


def hopeless(failures: Sequence[SourceFailure]) -> bool:
    """A history one local model found unusable is unusable for the next one too."""
    return any(
        f.source.startswith("local") and f.reason == "insufficient_history" for f in failures
    )
