"""Open Inference Protocol v2 (KServe v2 / Triton / MLServer) as tbotd speaks it, both halves.

tbotd's models are one OIP model (default name ``tbotd``, ``ml.model_name``):

* input ``features`` FP32 ``[N, 25]`` — :data:`tbotd.features.FEATURE_NAMES` in order, one row
  per symbol, computed by the client from closed candles exactly as the local predictor does;
* outputs ``direction`` FP32 ``[N, 3]`` (P(down, neutral, up)), ``volatility`` FP32 ``[N, 2]``
  (forward-return mean and ``sd``, fractions of price) and ``regime`` FP32 ``[N, 3]``
  (P(trend-down, sideways, trend-up)); the client turns them into Predictions with the local
  predictor's own rule (:func:`tbotd.ml.signals.prediction_from_outputs`).

The feature schema is guarded twice: the model declares ``feature_schema_hash`` (in its metadata
``parameters`` on ``tbotd serve``, in its ``config.pbtxt`` parameters on Triton, read through
``GET /v2/models/{name}/config``) and the client refuses a model whose hash or input shape differs;
every infer request also carries the hash as a request parameter, which ``tbotd serve`` checks.

Requests use plain JSON tensors; ``tbotd serve`` also accepts and returns Triton's binary tensor
extension (``Inference-Header-Content-Length``), which the official ``tritonclient`` uses by
default. Decoding untrusted input raises :class:`~tbotd.domain.errors.InvalidDataError`
(the client's :class:`InvalidResponseError` is one) and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tbotd.domain.errors import InvalidDataError
from tbotd.features import FEATURE_NAMES, FEATURE_SCHEMA_HASH
from tbotd.ml.outputs import ModelOutputs
from tbotd.predictor.errors import InvalidResponseError, SchemaMismatchError
from tbotd.predictor.jsonapi import strict_json_loads

INPUT = "features"
OUTPUTS: tuple[tuple[str, int], ...] = (("direction", 3), ("volatility", 2), ("regime", 3))
SCHEMA_PARAM = "feature_schema_hash"
VERSION_PARAM = "tbotd_model_version"
TRAINED_PARAM = "tbotd_trained_until"  # schema 2: the end of the models' training data (ISO)
HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_ROWS = 4096
_PROB_TOLERANCE = 1e-3
N_FEATURES = len(FEATURE_NAMES)


def model_path(name: str, version: str = "") -> str:
    """``/v2/models/{name}`` or ``/v2/models/{name}/versions/{version}``."""
    return f"/v2/models/{name}" + (f"/versions/{version}" if version else "")


def _numbers(data: Any, expected: int, what: str) -> NDArray[np.float64]:
    """Flatten nested JSON lists of numbers (row-major) and check the count; no strings, bools."""
    flat: list[float] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            flat.append(float(item))
        else:
            raise InvalidResponseError(f"{what}: data holds {type(item).__name__}, not numbers")
        if len(flat) > expected:
            break
    if len(flat) != expected:
        raise InvalidResponseError(f"{what}: data has the wrong number of values")
    return np.asarray(flat, dtype=np.float64)


# --- client half -------------------------------------------------------------------------------


def encode_infer_request(
    features: NDArray[np.floating], request_id: str, candle_time: datetime
) -> bytes:
    """The infer body for features [N, F]: FP32 JSON data, all outputs asked for as JSON."""
    x = np.asarray(features, dtype=np.float32)
    body = {
        "id": request_id,
        "parameters": {SCHEMA_PARAM: FEATURE_SCHEMA_HASH, "candle_time": candle_time.isoformat()},
        "inputs": [
            {"name": INPUT, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ],
        "outputs": [{"name": name} for name, _ in OUTPUTS],
    }
    return json.dumps(body, allow_nan=False).encode()


@dataclass(frozen=True)
class DecodedOutputs:
    """A checked infer response: outputs for N rows, rows that must not be used, the version."""

    outputs: ModelOutputs
    bad_rows: dict[int, str] = field(default_factory=dict)
    model_version: str = ""
    trained_until: datetime | None = None  # when the server says (tbotd serve does)


def decode_infer_response(body: bytes, n: int, request_id: str) -> DecodedOutputs:
    """Check a 200 infer response for ``n`` rows; raises :class:`InvalidResponseError`."""
    parsed = strict_json_loads(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("outputs"), list):
        raise InvalidResponseError("infer response has no outputs list")
    if "id" in parsed and parsed["id"] != request_id:
        raise InvalidResponseError("infer response id does not echo the request id")
    tensors: dict[str, NDArray[np.float64]] = {}
    for name, width in OUTPUTS:
        found = [o for o in parsed["outputs"] if isinstance(o, dict) and o.get("name") == name]
        if len(found) != 1:
            raise InvalidResponseError(f"infer response must have exactly one output {name!r}")
        out = found[0]
        if out.get("datatype") not in ("FP32", "FP64"):
            raise InvalidResponseError(f"output {name}: datatype must be FP32 or FP64")
        if out.get("shape") != [n, width]:
            raise InvalidResponseError(f"output {name}: shape must be [{n}, {width}]")
        tensors[name] = _numbers(out.get("data"), n * width, f"output {name}").reshape(n, width)
    version = parsed.get("model_version")
    params = parsed.get("parameters")
    tag = params.get(VERSION_PARAM) if isinstance(params, dict) else None
    model_version = tag if isinstance(tag, str) and 0 < len(tag) <= 128 else ""
    if not model_version and isinstance(version, str) and len(version) <= 64:
        model_name = parsed.get("model_name")
        prefix = model_name if isinstance(model_name, str) and len(model_name) <= 64 else "oip"
        model_version = f"{prefix}/{version}" if version else prefix
    with np.errstate(over="ignore"):  # FP64 beyond float32's range → inf → a bad row
        as32 = {k: v.astype(np.float32) for k, v in tensors.items()}
    vol = as32["volatility"]
    outputs = ModelOutputs(
        direction=as32["direction"],
        ret_mean=np.ascontiguousarray(vol[:, 0]),
        sd=np.ascontiguousarray(vol[:, 1]),
        regime=as32["regime"],
    )
    return DecodedOutputs(outputs, _bad_rows(as32), model_version or "oip", _trained_until(params))


def _trained_until(params: Any) -> datetime | None:
    """The server's training-window end, if it gave a valid zoned ISO time (else absent)."""
    raw = params.get(TRAINED_PARAM) if isinstance(params, dict) else None
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _bad_rows(tensors: dict[str, NDArray[np.float32]]) -> dict[int, str]:
    bad: dict[int, str] = {}
    for name in ("direction", "regime"):
        p = tensors[name]
        rows = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
        rows |= np.abs(p.sum(axis=1) - 1) > _PROB_TOLERANCE
        for i in np.flatnonzero(rows):
            bad.setdefault(int(i), f"{name} is not a probability vector")
    vol = tensors["volatility"]
    for i in np.flatnonzero(~np.isfinite(vol).all(axis=1) | (vol[:, 1] <= 0)):
        bad.setdefault(int(i), "volatility is not finite or sd is not positive")
    return bad


def check_metadata(meta: Any, name: str) -> str | None:
    """Refuse (:class:`SchemaMismatchError`) a model whose inputs/outputs differ from ours.

    Returns the feature schema hash the model declares in its metadata, or None.
    """
    if not isinstance(meta, dict):
        raise SchemaMismatchError("model metadata is not a JSON object")
    if meta.get("name", name) != name:
        raise SchemaMismatchError(f"metadata is for model {meta.get('name')!r}, not {name!r}")
    inputs = meta.get("inputs")
    want = {"name": INPUT, "datatype": "FP32", "shape": [-1, N_FEATURES]}
    if not isinstance(inputs, list) or len(inputs) != 1 or not _tensor_is(inputs[0], want):
        raise SchemaMismatchError(
            f"the model must take exactly one input {INPUT} FP32 [-1, {N_FEATURES}] "
            f"(tbotd's {N_FEATURES} features); it declares {_short(inputs)}"
        )
    outputs = meta.get("outputs")
    for out_name, width in OUTPUTS:
        want = {"name": out_name, "datatype": "FP32", "shape": [-1, width]}
        if not isinstance(outputs, list) or not any(_tensor_is(o, want) for o in outputs):
            raise SchemaMismatchError(f"the model lacks output {out_name} FP32 [-1, {width}]")
    params = meta.get("parameters")
    declared = params.get(SCHEMA_PARAM) if isinstance(params, dict) else None
    return declared if isinstance(declared, str) else None


def _tensor_is(tensor: Any, want: dict[str, Any]) -> bool:
    return isinstance(tensor, dict) and all(tensor.get(k) == v for k, v in want.items())


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def schema_hash_from_config(config: Any) -> str | None:
    """The ``feature_schema_hash`` parameter of a Triton model configuration (JSON form)."""
    params = config.get("parameters") if isinstance(config, dict) else None
    entry = params.get(SCHEMA_PARAM) if isinstance(params, dict) else None
    value = None
    if isinstance(entry, dict):  # Triton writes proto field names; other JSON forms camelCase
        value = entry.get("string_value", entry.get("stringValue"))
    return value if isinstance(value, str) else None


def check_schema_hash(declared: str | None, required: bool) -> None:
    """Refuse a model trained on other features (or one that does not say, when required)."""
    if declared is None:
        if required:
            raise SchemaMismatchError(
                f"the model does not declare its {SCHEMA_PARAM}; tbotd cannot tell whether it "
                "was trained on the features it sends (set ml.remote_require_schema_hash = false "
                "to accept it anyway)"
            )
        return
    if declared != FEATURE_SCHEMA_HASH:
        raise SchemaMismatchError(
            f"the model's {SCHEMA_PARAM} is {declared[:16]}…, tbotd computes features of "
            f"schema {FEATURE_SCHEMA_HASH[:16]}…: retrain/re-export the model with this tbotd"
        )


# --- server half -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferRequest:
    """A decoded infer request: features [N, F] float32 and how to answer."""

    features: NDArray[np.float32]
    request_id: str | None
    outputs: tuple[str, ...]
    binary: frozenset[str]


def decode_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode (JSON or binary-extension) infer input; raises :class:`InvalidDataError`."""
    head, raw = _split_binary(body, header_length)
    parsed = strict_json_loads(head)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("inputs"), list):
        raise InvalidDataError("an infer request needs an inputs list")
    params = parsed.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidDataError("parameters must be an object")
    declared = params.get(SCHEMA_PARAM)
    if declared is not None and declared != FEATURE_SCHEMA_HASH:
        raise InvalidDataError(f"{SCHEMA_PARAM} differs from this server's feature schema")
    inputs = parsed["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict) or inputs[0].get("name") != INPUT:
        raise InvalidDataError(f"exactly one input named {INPUT!r} is expected")
    features = _input_tensor(inputs[0], raw)
    request_id = parsed.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidDataError("id must be a string")
    names, binary = _requested_outputs(parsed.get("outputs"), params)
    return InferRequest(features, request_id, names, binary)


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError as e:
        raise InvalidDataError(f"{HEADER_LENGTH} must be an integer") from e
    if not 0 < size <= len(body):
        raise InvalidDataError(f"{HEADER_LENGTH} is out of range")
    return body[:size], body[size:]


def _input_tensor(tensor: dict[str, Any], raw: bytes) -> NDArray[np.float32]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or shape[1] != N_FEATURES
        or not isinstance(shape[0], int)
        or not 1 <= shape[0] <= MAX_ROWS
    ):
        raise InvalidDataError(f"input {INPUT} must have shape [N, {N_FEATURES}], N ≤ {MAX_ROWS}")
    datatype = tensor.get("datatype")
    if datatype not in ("FP32", "FP64"):
        raise InvalidDataError(f"input {INPUT} must be FP32 (or FP64)")
    dtype = np.dtype("<f4") if datatype == "FP32" else np.dtype("<f8")
    n = shape[0] * N_FEATURES
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if size != n * dtype.itemsize or len(raw) != size:
            raise InvalidDataError(f"input {INPUT}: binary_data_size does not match its shape")
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    else:
        values = _numbers(tensor.get("data"), n, f"input {INPUT}")
    if not np.isfinite(values).all():
        raise InvalidDataError(f"input {INPUT} contains NaN or infinite values")
    matrix: NDArray[np.float32] = values.reshape(shape[0], N_FEATURES).astype(np.float32)
    return matrix


def _requested_outputs(
    outputs: Any, params: dict[str, Any]
) -> tuple[tuple[str, ...], frozenset[str]]:
    known = [name for name, _ in OUTPUTS]
    all_binary = params.get("binary_data_output") is True
    if outputs is None:
        return tuple(known), frozenset(known) if all_binary else frozenset()
    if not isinstance(outputs, list) or not outputs:
        raise InvalidDataError("outputs must be a non-empty list")
    names: list[str] = []
    binary: set[str] = set()
    for out in outputs:
        name = out.get("name") if isinstance(out, dict) else None
        if name not in known or name in names:
            raise InvalidDataError(f"unknown or repeated output {name!r}; outputs are {known}")
        names.append(name)
        out_params = out.get("parameters") or {}
        if all_binary or (isinstance(out_params, dict) and out_params.get("binary_data") is True):
            binary.add(name)
    return tuple(names), frozenset(binary)


def encode_infer_response(
    out: ModelOutputs,
    request: InferRequest,
    name: str,
    version: str,
    model_version: str,
    trained_until: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (binary tensors appended when they were asked for)."""
    arrays = {
        "direction": out.direction,
        "volatility": np.stack([out.ret_mean, out.sd], axis=1),
        "regime": out.regime,
    }
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for key in request.outputs:
        array = np.ascontiguousarray(arrays[key], dtype="<f4")
        entry: dict[str, Any] = {"name": key, "datatype": "FP32", "shape": list(array.shape)}
        if key in request.binary:
            blob = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    body: dict[str, Any] = {"model_name": name, "model_version": version}
    if request.request_id is not None:
        body["id"] = request.request_id
    body["parameters"] = {VERSION_PARAM: model_version}
    if trained_until is not None:  # schema-1 clients ignore parameters they do not know
        body["parameters"][TRAINED_PARAM] = trained_until.isoformat()
    body["outputs"] = entries
    head = json.dumps(body, allow_nan=False).encode()
    if not blobs:
        return head, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
    return head + b"".join(blobs), headers


def model_metadata(name: str, versions: Sequence[str], model_version: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs, outputs and the feature schema this model expects."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": "pytorch_tbotd",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": [
            {"name": out, "datatype": "FP32", "shape": [-1, width]} for out, width in OUTPUTS
        ],
        "parameters": {SCHEMA_PARAM: FEATURE_SCHEMA_HASH, VERSION_PARAM: model_version},
    }


def model_config(name: str, max_batch_size: int, model_version: str) -> dict[str, Any]:
    """A Triton-style model configuration (JSON form of ``config.pbtxt``)."""
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch_size,
        "input": [{"name": INPUT, "data_type": "TYPE_FP32", "dims": [N_FEATURES]}],
        "output": [
            {"name": out, "data_type": "TYPE_FP32", "dims": [width]} for out, width in OUTPUTS
        ],
        "parameters": {
            SCHEMA_PARAM: {"string_value": FEATURE_SCHEMA_HASH},
            VERSION_PARAM: {"string_value": model_version},
        },
    }


def finite_rows(features: NDArray[np.floating]) -> NDArray[np.bool_]:
    """Rows that can be sent (JSON has no NaN; a row with one is a per-symbol rejection)."""
    return np.asarray(np.isfinite(features).all(axis=1), dtype=np.bool_)
