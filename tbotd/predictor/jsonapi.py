"""The JSON prediction API: tbotd's simple remote wire format, both halves (client and server).

One symbol::

    POST /v1/predictions
    {"symbol": "BTC/USDT:USDT",
     "timestamp": "2024-05-14T10:05:00+00:00",          # open time of the candle that just closed
     "candles": [[1715680800000, 61712.3, 61750.0, 61690.1, 61702.5, 812.4], ...]}   # optional
    → 200 a Prediction (README: Remote predictions): {"schema_version": 1 | 2, "symbol",
    "timestamp", "signal", "confidence", "sd"?, "take_profit"?/"stop_loss"?, "regime"?,
    "model_version", "source", "models"? (schema 2: each model's own answer)}

Schema negotiation: a client that understands schema 2 sends the header
``Tbotd-Prediction-Schema: 2`` (a header, because schema-1 servers refuse unknown body fields and
ignore unknown headers); a server answers schema 2 only to such a client and schema 1 (no
``models``) to everyone else, so old clients and servers keep working with new ones both ways.

Several symbols (one request per cycle)::

    POST /v1/predictions:batch
    {"requests": [<one-symbol request>, ...]}            # each symbol at most once
    → 200 {"predictions": [<Prediction> | {"symbol": "...", "error": "why"}, ...]}

``candles`` are the newest closed candles, oldest first, ending with the one at ``timestamp``:
``[open time ms, open, high, low, close, volume]`` (``ml.remote_candles`` of them; 0 sends none).
``tbotd serve`` needs at least the models' warm-up (576) and answers a per-symbol error otherwise.
Failures are ``{"error": "..."}`` with a 4xx/5xx status.

The client trusts nothing: every entry goes through the strict
:func:`~tbotd.domain.prediction.parse_prediction`, must be for the symbol and the candle it asked
about, and its ``source`` is overwritten with ``remote`` (the client, not the server, says where a
prediction came from). A bad entry is a per-symbol :class:`Rejection`; a body that is not the
promised shape at all raises :class:`InvalidResponseError`. Nothing else escapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import (
    LEGACY_SCHEMA_VERSION,
    PREDICTION_SCHEMA_VERSION,
    Prediction,
    parse_prediction,
)
from tbotd.domain.values import datetime_to_ms, ms_to_datetime, require_utc
from tbotd.predictor.errors import InvalidResponseError, Rejection
from tbotd.predictor.history import overlap

PREDICT_PATH = "/v1/predictions"
BATCH_PATH = "/v1/predictions:batch"
SCHEMA_HEADER = "Tbotd-Prediction-Schema"  # the prediction schema the client understands
MAX_BATCH = 1000
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def strict_json_loads(body: bytes | str) -> Any:
    """Parse JSON, refusing NaN/Infinity (Python's json accepts them) and bad UTF-8.

    Raises :class:`InvalidResponseError` (an :class:`InvalidDataError`) and nothing else.
    """

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        return json.loads(body, parse_constant=refuse)
    except (ValueError, TypeError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidResponseError(f"body is not valid JSON: {_short(str(e))}") from e


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- client half -------------------------------------------------------------------------------


def candle_rows(candles: Sequence[Candle]) -> list[list[int | float]]:
    """``[[open time ms, o, h, l, c, v], ...]`` as JSON numbers (floats round-trip exactly)."""
    return [
        [
            c.open_time_ms,
            float(c.open),
            float(c.high),
            float(c.low),
            float(c.close),
            float(c.volume),
        ]
        for c in candles
    ]


class CandleRowsCache:
    """The JSON text of each symbol's candle rows, reused from cycle to cycle.

    Candles are immutable, so a row's text never changes: each cycle only the newly closed
    candle is encoded, instead of re-encoding hundreds of rows per symbol (the bulk of a JSON
    request's cost with many symbols). Reuse needs the very same candle objects, as in
    :class:`~tbotd.predictor.history.SeriesCache`.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[list[Candle], list[str]]] = {}

    def rows_json(self, symbol: str, candles: list[Candle]) -> str:
        """``[[ms,o,h,l,c,v],...]`` for ``candles`` (oldest first) as JSON text."""
        cached = self._rows.get(symbol)
        start = overlap(cached[0], candles) if cached else -1
        if cached is not None and start >= 0:
            shared = len(cached[0]) - start
            texts = cached[1][start:] + _row_texts(candles[shared:])
        else:
            texts = _row_texts(candles)
        self._rows[symbol] = (candles, texts)
        return "[" + ",".join(texts) + "]"


def _row_texts(candles: Sequence[Candle]) -> list[str]:
    return [json.dumps(row, separators=(",", ":")) for row in candle_rows(candles)]


def request_for(
    symbol: str, candle_time: datetime, rows: list[list[int | float]] | None
) -> dict[str, Any]:
    """One symbol's request object (``candles`` only when ``rows`` is given)."""
    body: dict[str, Any] = {
        "symbol": symbol,
        "timestamp": require_utc(candle_time, "candle_time").isoformat(),
    }
    if rows is not None:
        body["candles"] = rows
    return body


def encode_requests(requests: Sequence[dict[str, Any]]) -> tuple[str, bytes]:
    """(path, body): the single form for one symbol, the batch form for several."""
    if len(requests) == 1:
        return PREDICT_PATH, json.dumps(requests[0], allow_nan=False).encode()
    return BATCH_PATH, json.dumps({"requests": list(requests)}, allow_nan=False).encode()


def encode_request_texts(
    requests: Sequence[tuple[str, datetime, str | None]],
) -> tuple[str, bytes]:
    """Like :func:`encode_requests`, from (symbol, candle time, candle rows as JSON text)."""
    parts = []
    for symbol, candle_time, rows_json in requests:
        head = json.dumps(request_for(symbol, candle_time, None), separators=(",", ":"))
        parts.append(head if rows_json is None else f'{head[:-1]},"candles":{rows_json}}}')
    if len(parts) == 1:
        return PREDICT_PATH, parts[0].encode()
    return BATCH_PATH, ('{"requests":[' + ",".join(parts) + "]}").encode()


def accept_prediction(entry: Any, symbol: str, candle_time: datetime) -> Prediction | Rejection:
    """A remote's entry for ``symbol`` as a Prediction with ``source=remote``, or why not."""
    prediction = _parse_entry(entry)
    if isinstance(prediction, Rejection):
        return prediction
    if prediction.symbol != symbol:
        return Rejection("wrong_symbol", f"prediction is for {prediction.symbol!r}, not {symbol!r}")
    if prediction.timestamp != candle_time:
        return Rejection(
            "wrong_candle",
            f"prediction is for the candle of {prediction.timestamp.isoformat()}, "
            f"not {candle_time.isoformat()}",
        )
    return prediction


def _parse_entry(entry: Any) -> Prediction | Rejection:
    if not isinstance(entry, dict):
        return Rejection("invalid_prediction", f"entry is {type(entry).__name__}, not an object")
    if "error" in entry and set(entry) <= {"symbol", "error"}:
        return Rejection("remote_error", _short(str(entry["error"])))
    try:
        return parse_prediction({**entry, "source": PredictionSource.REMOTE.value})
    except InvalidDataError as e:
        return Rejection("invalid_prediction", _short(str(e), 300))
    except Exception as e:  # noqa: BLE001 - untrusted input: any parser failure is a rejection
        return Rejection("invalid_prediction", _short(f"{type(e).__name__}: {e}", 300))


def decode_predictions(
    body: bytes, symbols: Sequence[str], candle_time: datetime
) -> tuple[dict[str, Prediction], dict[str, Rejection]]:
    """Check a 200 response to :func:`encode_requests` for ``symbols`` (in request order).

    Returns (accepted predictions, per-symbol rejections); every requested symbol is in exactly
    one of them. Raises :class:`InvalidResponseError` when the body is not the promised shape.
    """
    parsed = strict_json_loads(body)
    if len(symbols) == 1:
        return _split({symbols[0]: accept_prediction(parsed, symbols[0], candle_time)})
    if not isinstance(parsed, dict) or not isinstance(parsed.get("predictions"), list):
        raise InvalidResponseError('batch response is not {"predictions": [...]}')
    entries: dict[str, list[Any]] = {}
    for entry in parsed["predictions"]:
        key = entry.get("symbol") if isinstance(entry, dict) else None
        if isinstance(key, str):
            entries.setdefault(key, []).append(entry)
    results: dict[str, Prediction | Rejection] = {}
    for symbol in symbols:
        found = entries.get(symbol, [])
        if len(found) == 1:
            results[symbol] = accept_prediction(found[0], symbol, candle_time)
        elif not found:
            results[symbol] = Rejection("missing", "the batch response has no entry for it")
        else:
            results[symbol] = Rejection("invalid_prediction", f"{len(found)} entries for it")
    return _split(results)


def _split(
    results: dict[str, Prediction | Rejection],
) -> tuple[dict[str, Prediction], dict[str, Rejection]]:
    good = {s: r for s, r in results.items() if isinstance(r, Prediction)}
    bad = {s: r for s, r in results.items() if isinstance(r, Rejection)}
    return good, bad


# --- server half -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandleRequest:
    """One symbol's request as ``tbotd serve`` reads it: validated arrays, not yet features."""

    symbol: str
    timestamp: datetime
    open_time: NDArray[np.int64]  # [T] epoch ms, consecutive, the last == timestamp
    values: NDArray[np.float64]  # [T, 5] open, high, low, close, volume


def parse_request(obj: Any, step_ms: int) -> CandleRequest:
    """Validate one request object; raises :class:`InvalidDataError` saying what is wrong."""
    if not isinstance(obj, dict):
        raise InvalidDataError("a request must be a JSON object")
    unknown = set(obj) - {"symbol", "timestamp", "candles"}
    if unknown:
        raise InvalidDataError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    symbol = obj.get("symbol")
    if not isinstance(symbol, str) or not 0 < len(symbol) <= 64:
        raise InvalidDataError("symbol must be a string of 1-64 characters")
    timestamp = _timestamp(obj.get("timestamp"))
    rows = obj.get("candles")
    if rows is None:
        raise InvalidDataError(
            f"{symbol}: tbotd serve needs 'candles' (the newest closed candles, oldest first)"
        )
    times, values = _candle_arrays(symbol, rows, step_ms)
    if int(times[-1]) != datetime_to_ms(timestamp):
        raise InvalidDataError(
            f"{symbol}: the newest candle opened at {ms_to_datetime(int(times[-1])).isoformat()}, "
            f"but timestamp is {timestamp.isoformat()}"
        )
    return CandleRequest(symbol, timestamp, times, values)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_MS:
        return ms_to_datetime(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as e:
            raise InvalidDataError(f"timestamp {_short(value, 40)!r} is not ISO-8601") from e
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    raise InvalidDataError("timestamp must be ISO-8601 with a time zone, or epoch milliseconds")


def _candle_arrays(
    symbol: str, rows: Any, step_ms: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    if not isinstance(rows, list) or not rows:
        raise InvalidDataError(f"{symbol}: candles must be a non-empty list of rows")
    try:
        table = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as e:
        raise InvalidDataError(f"{symbol}: candles must be rows of 6 numbers") from e
    if table.ndim != 2 or table.shape[1] != 6:
        raise InvalidDataError(f"{symbol}: candles must be rows of 6 numbers")
    if not np.isfinite(table).all():
        raise InvalidDataError(f"{symbol}: candles contain NaN or infinite values")
    raw_times = table[:, 0]
    if (
        (raw_times != np.round(raw_times)).any()
        or (raw_times < 0).any()
        or raw_times.max() > _MAX_MS
    ):
        raise InvalidDataError(f"{symbol}: candle times must be integer epoch milliseconds")
    times = raw_times.astype(np.int64)
    steps = np.diff(times)
    if (times % step_ms).any() or (steps != step_ms).any():
        raise InvalidDataError(f"{symbol}: candles must be consecutive {step_ms // 60_000}m bars")
    values = np.ascontiguousarray(table[:, 1:])
    o, h, lo, c, v = (values[:, k] for k in range(5))
    bad = (lo <= 0) | (h < lo) | (o < lo) | (o > h) | (c < lo) | (c > h) | (v < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidDataError(f"{symbol}: candle {row} is not a valid OHLCV bar")
    return times, values


def parse_batch(body: Any) -> list[Any]:
    """The request objects of a batch body; raises :class:`InvalidDataError` for a bad shape."""
    if not isinstance(body, dict) or set(body) != {"requests"}:
        raise InvalidDataError('a batch must be {"requests": [...]}')
    requests = body["requests"]
    if not isinstance(requests, list) or not 0 < len(requests) <= MAX_BATCH:
        raise InvalidDataError(f"requests must be a list of 1-{MAX_BATCH} objects")
    symbols = [r.get("symbol") for r in requests if isinstance(r, dict)]
    if len(set(map(str, symbols))) != len(symbols):
        raise InvalidDataError("each symbol may appear only once in a batch")
    return requests


def prediction_json(prediction: Prediction, schema: int = LEGACY_SCHEMA_VERSION) -> dict[str, Any]:
    """A Prediction as the JSON object the API returns to a client of ``schema`` (None fields and
    empty per-model lists left out, so a schema-1 client sees exactly the schema-1 shape)."""
    if schema < PREDICTION_SCHEMA_VERSION:
        prediction = prediction.as_legacy()
    out: dict[str, Any] = prediction.model_dump(mode="json", exclude_none=True)
    for key in ("models", "refused"):
        if not out.get(key):
            out.pop(key, None)
    return out


def requested_schema(header: str | None) -> int:
    """The prediction schema a client asked for by :data:`SCHEMA_HEADER` (1 when absent/unknown)."""
    if header is not None and header.strip() == str(PREDICTION_SCHEMA_VERSION):
        return PREDICTION_SCHEMA_VERSION
    return LEGACY_SCHEMA_VERSION
