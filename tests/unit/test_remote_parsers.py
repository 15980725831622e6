"""Untrusted bodies (remote responses, serve requests) become a valid result or a named rejection:
thousands of random and mutated bodies never make anything else escape to the caller."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import InvalidDataError
from tbotd.domain.prediction import Prediction
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.ml.outputs import ModelOutputs
from tbotd.predictor import jsonapi, oip
from tbotd.predictor.errors import InvalidResponseError, Rejection, SchemaMismatchError

T = datetime(2024, 5, 14, 10, 5, tzinfo=UTC)
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
EXAMPLES = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def valid_prediction(symbol: str = SYMBOLS[0], when: datetime = T) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "symbol": symbol,
        "timestamp": when.isoformat(),
        "signal": "long",
        "confidence": 0.71,
        "sd": 0.004,
        "regime": {"trend_up": 0.5, "sideways": 0.3, "trend_down": 0.2},
        "model_version": "m-1",
        "source": "remote",
    }


FIELDS = list(valid_prediction())


@st.composite
def mutated_prediction(draw: st.DrawFn, symbol: str = SYMBOLS[0]) -> Any:
    entry: dict[str, Any] = valid_prediction(symbol)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add", "nan-ish"]))
        key = draw(st.sampled_from(FIELDS))
        if action == "replace":
            entry[key] = draw(json_values | st.integers(-(10**30), 10**30))
        elif action == "delete":
            entry.pop(key, None)
        elif action == "add":
            entry[draw(st.text(max_size=8))] = draw(json_values)
        else:
            entry[key] = draw(st.sampled_from(["NaN", "Infinity", 1e308, -0.0, 1.0000001, ""]))
    return entry


def check_partition(
    result: tuple[dict[str, Prediction], dict[str, Rejection]], symbols: list[str]
) -> None:
    predictions, rejections = result
    assert set(predictions) | set(rejections) == set(symbols)
    assert not set(predictions) & set(rejections)
    for symbol, p in predictions.items():
        assert p.symbol == symbol
        assert p.timestamp == T
        assert p.source is PredictionSource.REMOTE
        assert 0 <= p.confidence <= 1
    for r in rejections.values():
        assert r.reason
        assert isinstance(r.detail, str)


def decode_or_reject(body: bytes, symbols: list[str]) -> None:
    try:
        result = jsonapi.decode_predictions(body, symbols, T)
    except InvalidResponseError:
        return
    check_partition(result, symbols)


@EXAMPLES
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_never_raised(body: bytes) -> None:
    """Arbitrary bytes: a rejection (or, by chance, a checked prediction), nothing else."""
    decode_or_reject(body, SYMBOLS[:1])
    decode_or_reject(body, SYMBOLS)


@EXAMPLES
@given(json_values)
def test_random_json_is_rejected_never_raised(value: Any) -> None:
    """Any JSON document, as a single or a batch response."""
    body = json.dumps(value).encode()
    decode_or_reject(body, SYMBOLS[:1])
    decode_or_reject(json.dumps({"predictions": value}).encode(), SYMBOLS)


@EXAMPLES
@given(mutated_prediction())
def test_mutated_predictions_are_valid_or_rejected(entry: Any) -> None:
    """Valid bodies with fields replaced, deleted, added or made extreme."""
    decode_or_reject(json.dumps(entry).encode(), SYMBOLS[:1])


@EXAMPLES
@given(st.lists(mutated_prediction(SYMBOLS[1]) | json_values, max_size=4))
def test_mutated_batches_are_valid_or_rejected(entries: list[Any]) -> None:
    """Batch responses with mutated, duplicated or foreign entries."""
    body = json.dumps({"predictions": [valid_prediction(), *entries]}).encode()
    decode_or_reject(body, SYMBOLS)


def test_a_valid_answer_is_accepted_and_its_source_is_remote() -> None:
    """A correct prediction is accepted; a claimed source is overwritten with remote."""
    body = dict(valid_prediction(), source="local-gpu")
    good, bad = jsonapi.decode_predictions(json.dumps(body).encode(), SYMBOLS[:1], T)
    assert bad == {}
    assert good[SYMBOLS[0]].source is PredictionSource.REMOTE
    assert good[SYMBOLS[0]].confidence == 0.71


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": (T - timedelta(minutes=5)).isoformat()}, "wrong_candle"),
        ({"symbol": "ETH/USDT:USDT"}, "wrong_symbol"),
        ({"confidence": 1.2}, "invalid_prediction"),
        ({"signal": "moon"}, "invalid_prediction"),
        ({"timestamp": 10**30}, "invalid_prediction"),
    ],
)
def test_each_kind_of_bad_entry_has_its_reason(change: dict[str, Any], reason: str) -> None:
    """Another candle, another symbol, out-of-range confidence, unknown signal, absurd time."""
    body = json.dumps(dict(valid_prediction(), **change)).encode()
    good, bad = jsonapi.decode_predictions(body, SYMBOLS[:1], T)
    assert good == {}
    assert bad[SYMBOLS[0]].reason == reason


def test_nan_in_a_body_is_refused() -> None:
    """JSON has no NaN; Python's json would accept one, the client does not."""
    body = json.dumps(valid_prediction()).replace("0.71", "NaN").encode()
    with pytest.raises(InvalidResponseError):
        jsonapi.decode_predictions(body, SYMBOLS[:1], T)


def test_batch_entries_are_matched_by_symbol_and_missing_ones_named() -> None:
    """Order does not matter; a symbol without an entry is 'missing'."""
    body = json.dumps({"predictions": [valid_prediction(SYMBOLS[1])]}).encode()
    good, bad = jsonapi.decode_predictions(body, SYMBOLS, T)
    assert list(good) == [SYMBOLS[1]]
    assert bad[SYMBOLS[0]].reason == "missing"


# --- OIP ------------------------------------------------------------------------------------


def oip_response(n: int, request_id: str = "r1") -> dict[str, Any]:
    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(3), size=n)
    regime = rng.dirichlet(np.ones(3), size=n)
    vol = np.column_stack([rng.normal(0, 1e-3, n), rng.uniform(1e-3, 1e-2, n)])
    return {
        "model_name": "tbotd",
        "model_version": "1",
        "id": request_id,
        "outputs": [
            {
                "name": "direction",
                "datatype": "FP32",
                "shape": [n, 3],
                "data": probs.ravel().tolist(),
            },
            {"name": "volatility", "datatype": "FP32", "shape": [n, 2], "data": vol.tolist()},
            {
                "name": "regime",
                "datatype": "FP32",
                "shape": [n, 3],
                "data": regime.ravel().tolist(),
            },
        ],
    }


def decode_oip_or_reject(body: bytes, n: int) -> None:
    try:
        decoded = oip.decode_infer_response(body, n, "r1")
    except InvalidResponseError:
        return
    assert decoded.outputs.direction.shape == (n, 3)
    assert decoded.outputs.regime.shape == (n, 3)
    assert decoded.outputs.sd.shape == (n,)
    good = [i for i in range(n) if i not in decoded.bad_rows]
    assert np.isfinite(decoded.outputs.direction[good]).all()
    assert (decoded.outputs.sd[good] > 0).all()


@st.composite
def mutated_oip(draw: st.DrawFn) -> Any:
    body = oip_response(2)
    target = draw(st.sampled_from(["top", "output", "data"]))
    if target == "top":
        body[draw(st.sampled_from(["id", "outputs", "model_version", "parameters"]))] = draw(
            json_values
        )
    elif target == "output":
        out = body["outputs"][draw(st.integers(0, 2))]
        out[draw(st.sampled_from(["name", "datatype", "shape", "data"]))] = draw(json_values)
    else:
        out = body["outputs"][draw(st.integers(0, 2))]
        data = list(np.ravel(out["data"]))
        data[draw(st.integers(0, len(data) - 1))] = draw(
            st.sampled_from([-1.0, 2.0, 1e308, -1e308, 0.0, "x", None, True, [1.0]])
        )
        out["data"] = data
    return body


@EXAMPLES
@given(json_values | mutated_oip())
def test_oip_responses_are_decoded_or_rejected(value: Any) -> None:
    """Random and mutated infer responses: checked outputs or InvalidResponseError."""
    decode_oip_or_reject(json.dumps(value).encode(), 2)


@EXAMPLES
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_serve_decodes_requests_or_refuses_them(body: bytes) -> None:
    """tbotd serve's decoders: a request or InvalidDataError (a 400), never a 500."""
    with contextlib.suppress(InvalidDataError):
        oip.decode_infer_request(body, None)
    with contextlib.suppress(InvalidDataError):
        jsonapi.parse_request(jsonapi.strict_json_loads(body), 300_000)


def test_oip_rows_with_nan_or_non_probabilities_are_bad_rows() -> None:
    """A row whose probabilities are not a distribution is flagged, the others are usable."""
    body = oip_response(3)
    body["outputs"][0]["data"][0:3] = [0.9, 0.9, 0.9]
    body["outputs"][1]["data"][2] = [0.0, -1.0]
    decoded = oip.decode_infer_response(json.dumps(body).encode(), 3, "r1")
    assert set(decoded.bad_rows) == {0, 2}
    assert decoded.model_version == "tbotd/1"


def test_oip_response_with_another_id_is_refused() -> None:
    """A response that does not echo our request id is someone else's answer."""
    with pytest.raises(InvalidResponseError, match="id"):
        oip.decode_infer_response(json.dumps(oip_response(1, "other")).encode(), 1, "r1")


def test_oip_round_trip_preserves_float32_exactly() -> None:
    """Features and outputs cross the wire bit for bit (JSON and binary tensors)."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(5, len(FEATURE_NAMES))).astype(np.float32)
    body = oip.encode_infer_request(features, "abc", T)
    request = oip.decode_infer_request(body, None)
    np.testing.assert_array_equal(request.features, features)
    out = ModelOutputs(
        direction=rng.dirichlet(np.ones(3), 5).astype(np.float32),
        ret_mean=rng.normal(size=5).astype(np.float32),
        sd=rng.uniform(0.001, 0.01, 5).astype(np.float32),
        regime=rng.dirichlet(np.ones(3), 5).astype(np.float32),
    )
    payload, _ = oip.encode_infer_response(out, request, "tbotd", "1", "v9")
    decoded = oip.decode_infer_response(payload, 5, "abc")
    np.testing.assert_array_equal(decoded.outputs.direction, out.direction)
    np.testing.assert_array_equal(decoded.outputs.sd, out.sd)
    assert decoded.model_version == "v9"


def test_metadata_check_refuses_other_features() -> None:
    """Another input width, another schema hash, or no hash at all (when required) → refused."""
    meta = oip.model_metadata("tbotd", ["1"], "v")
    assert oip.check_metadata(meta, "tbotd") == FEATURE_SCHEMA_HASH
    wide = json.loads(json.dumps(meta))
    wide["inputs"][0]["shape"] = [-1, len(FEATURE_NAMES) + 1]
    with pytest.raises(SchemaMismatchError):
        oip.check_metadata(wide, "tbotd")
    with pytest.raises(SchemaMismatchError):
        oip.check_schema_hash("0" * 64, required=True)
    with pytest.raises(SchemaMismatchError):
        oip.check_schema_hash(None, required=True)
    oip.check_schema_hash(None, required=False)
    assert oip.schema_hash_from_config(oip.model_config("tbotd", 8, "v")) == FEATURE_SCHEMA_HASH
