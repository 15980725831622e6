"""The local predictor: trained models from a model directory, on CUDA when present, else CPU.

Public API (the daemon's fallback chain, ``tbotd serve`` and ``tbotd backtest`` call these)::

    predictor = LocalPredictor.load(models_dir, device="auto")   # "auto" | "cpu" | "cuda"
    predictor.required_history                 # closed candles needed per symbol
    await predictor.predict({symbol: candles})  # -> {symbol: Prediction}, one batched forward
    await predictor.predict_partial(histories)  # -> (predictions, {symbol: why it was skipped})
    predictor.predict_history(frame)            # -> DataFrame, one row per bar (backtests)
    predictor.predict_features(matrix)          # -> ModelOutputs for raw features [N, F]
    predictor.close()
    load_local_models(models_dir, settings)     # -> ([LocalPredictor, ...], SourceFailure | None)

``load`` refuses a directory it cannot trust with a named
:class:`~tbotd.ml.errors.ModelLoadError` (missing directory or manifest, unreadable manifest,
other format version, other feature schema, weights whose sha256 differs); the daemon reports it
and degrades to neutral. Weights are safetensors; nothing is unpickled.

Signal rule (:mod:`tbotd.ml.signals`): ``signal`` = the direction classifier's most probable class
(down → short, neutral → neutral, up → long) and ``confidence`` = its calibrated probability;
``sd`` = the volatility model's standard deviation of the forward return (the strategy places
SL/TP at ``entry × (1 ∓ k·sd)``); ``regime`` = the regime detector's probabilities.

``predict`` and ``predict_history`` compute the same features (bit-identical, see
:mod:`tbotd.features`) and run the same fixed-block forward (:func:`tbotd.ml.models.run_models`),
so a backtest sees exactly the predictions the live daemon would have made.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from tbotd.config.settings import Settings
from tbotd.domain.enums import PredictionSource
from tbotd.domain.errors import ConfigError
from tbotd.domain.market import Candle
from tbotd.domain.prediction import Prediction
from tbotd.features import (
    FEATURE_NAMES,
    WARMUP,
    bars_from_frame,
    feature_matrix,
)
from tbotd.ml.artifacts import LoadedModels, load_models
from tbotd.ml.device import inference_threads, resolve_device, set_threads, source_for
from tbotd.ml.errors import (
    FeatureSchemaMismatchError,
    FormatVersionError,
    InsufficientHistoryError,
    ManifestError,
    ModelLoadError,
    ModelNotFoundError,
    WeightsIntegrityError,
)
from tbotd.ml.manifest import Manifest, history_shortfall
from tbotd.ml.models import MODEL_OUTPUTS, run_models
from tbotd.ml.outputs import ModelOutputs
from tbotd.ml.signals import SIGNALS, clamp_sd, prediction_from_outputs, signal_indices
from tbotd.monitoring.drift import DriftReference, FeatureWindow, out_of_range, outside_mask
from tbotd.ops.logs import get_logger
from tbotd.predictor.history import SeriesCache, latest_feature_rows, newest
from tbotd.predictor.outcome import Skip, SourceFailure

__all__ = [
    "FeatureSchemaMismatchError",
    "FormatVersionError",
    "InsufficientHistoryError",
    "LocalPredictor",
    "ManifestError",
    "ModelLoadError",
    "ModelNotFoundError",
    "WeightsIntegrityError",
    "load_local_models",
]

log = get_logger(__name__)
HISTORY_COLUMNS = (
    "ready",
    "signal",
    "confidence",
    *MODEL_OUTPUTS["direction"],
    *MODEL_OUTPUTS["volatility"],
    *MODEL_OUTPUTS["regime"],
)


class LocalPredictor:
    """Loaded local models plus the executor that keeps inference off the event loop."""

    def __init__(self, loaded: LoadedModels) -> None:
        self._loaded = loaded
        manifest = loaded.manifest
        self._required = max(manifest.required_history, WARMUP)
        self._cache = SeriesCache(self._required, manifest.timeframe)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tbotd-local-ml")
        self._lock = threading.Lock()
        extra = manifest.model_extra or {}
        self.reference = DriftReference.from_json(extra.get("drift_reference"), FEATURE_NAMES)
        self.drift = FeatureWindow(self.reference) if self.reference is not None else None

    @classmethod
    def load(
        cls, models_dir: str | Path, device: str = "auto", threads: int | None = None
    ) -> LocalPredictor:
        """Load and check a model directory written by ``tbotd train``.

        ``device="auto"`` uses CUDA when ``torch.cuda.is_available()``, else the CPU. ``threads``
        caps torch's (process-wide) CPU threads; by default 1 (see ``inference_threads``). Raises
        a :class:`ModelLoadError` subclass naming what is wrong.
        """
        set_threads(threads or inference_threads())
        return cls(load_models(Path(models_dir), resolve_device(device)))

    @property
    def required_history(self) -> int:
        """Consecutive closed candles each symbol's history must have (the newest included)."""
        return self._required

    @property
    def model_version(self) -> str:
        """The manifest's model version, copied into every Prediction."""
        return self._loaded.manifest.model_version

    @property
    def trained_until(self) -> datetime | None:
        """The end of the training window in the manifest (the models' age counts from it)."""
        end = (self._loaded.manifest.training.get("window") or {}).get("end")
        try:
            return datetime.fromisoformat(end) if isinstance(end, str) else None
        except ValueError:
            return None

    @property
    def manifest(self) -> Manifest:
        """The validated manifest of the loaded directory."""
        return self._loaded.manifest

    @property
    def device(self) -> torch.device:
        """Where the models run."""
        return self._loaded.device

    @property
    def source(self) -> PredictionSource:
        """``local-gpu`` on CUDA, ``local-cpu`` otherwise."""
        return source_for(self._loaded.device)

    def predict_features(self, features: NDArray[np.floating]) -> ModelOutputs:
        """Raw model outputs for a feature matrix [N, F] in ``FEATURE_NAMES`` order (blocking)."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"features must be [N, {len(FEATURE_NAMES)}], got {list(x.shape)}")
        with self._lock:
            return run_models(self._loaded.models, x, self._loaded.device)

    async def predict(self, histories: Mapping[str, Sequence[Candle]]) -> dict[str, Prediction]:
        """One Prediction per symbol for the candle that just closed (each history's last).

        The newest candles are snapshotted here; features and the batched forward pass run in
        this predictor's executor, so the event loop never blocks on them. Raises
        :class:`InsufficientHistoryError` if any history is too short or not consecutive.
        """
        predictions, problems = await self.predict_partial(histories)
        if problems:
            raise InsufficientHistoryError("; ".join(map(str, problems.values())))
        return predictions

    async def predict_partial(
        self, histories: Mapping[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, Skip]]:
        """Like :meth:`predict`, but symbols whose history is unusable (or whose inputs lie
        outside the training range: the models abstain there) are reported, not raised.

        Returns (predictions of the usable symbols, {symbol: why the others were skipped}); the
        usable symbols still share one forward pass. The fallback chain uses this so one short
        history never costs the other symbols their local prediction.
        """
        snapshot = {s: newest(h, self._required) for s, h in histories.items()}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._predict_partial_now, snapshot)

    def predict_now(self, histories: Mapping[str, Sequence[Candle]]) -> dict[str, Prediction]:
        """The blocking body of :meth:`predict` (for callers already off the event loop)."""
        predictions, problems = self._predict_partial_now(histories)
        if problems:
            raise InsufficientHistoryError("; ".join(map(str, problems.values())))
        return predictions

    def _predict_partial_now(
        self, histories: Mapping[str, Sequence[Candle]]
    ) -> tuple[dict[str, Prediction], dict[str, Skip]]:
        symbols, series, features, short = latest_feature_rows(
            self._cache, histories, self._required
        )
        problems = {s: Skip("insufficient_history", why) for s, why in short.items()}
        if not symbols:
            return {}, problems
        if self.drift is not None:
            self.drift.observe(features)
        out = self.predict_features(features)
        predictions = {}
        for i, (symbol, s) in enumerate(zip(symbols, series, strict=True)):
            outside = self._out_of_range(features[i])
            if outside:
                problems[symbol] = Skip("out_of_distribution", outside)
            else:
                predictions[symbol] = self._prediction(symbol, s.candles[-1], out, i)
        return predictions, problems

    def _out_of_range(self, row: NDArray[np.floating]) -> str:
        """Why the models abstain on this feature row ("" when it is inside their training
        range; always "" for models trained before the range was recorded)."""
        if self.reference is None:
            return ""
        names = out_of_range(row, self.reference)
        return f"inputs outside the training range: {', '.join(names)}" if names else ""

    def drift_summary(self) -> dict[str, Any]:
        """Live PSI of the inputs against training (``available`` False for older models)."""
        if self.drift is None:
            return {"available": False, "status": "no reference in the manifest"}
        return self.drift.summary()

    def _prediction(self, symbol: str, candle: Candle, out: ModelOutputs, i: int) -> Prediction:
        return prediction_from_outputs(
            symbol, candle.open_time, out, i, self.model_version, self.source
        )

    def predict_history(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What :meth:`predict` would have said after every bar of one symbol's history.

        ``frame`` is a candle DataFrame (see :func:`tbotd.features.compute_features`) of
        consecutive bars. Returns one row per bar with the same index: ``ready`` (False until
        the warm-up is complete; those rows are NaN with ``signal`` None), ``signal``
        (long/short/neutral), ``confidence``, ``p_down``, ``p_neutral``, ``p_up``, ``ret_mean``,
        ``sd`` (clamped as in Predictions), ``p_trend_down``, ``p_sideways``, ``p_trend_up``.
        Values equal the live path's exactly (same features, same fixed-block forward).
        """
        features = feature_matrix(bars_from_frame(frame))[0]
        ready = np.isfinite(features).all(axis=1)
        ready[: self._required - 1] = False
        if self.reference is not None:  # the live path abstains on these rows: so does this
            ready &= ~outside_mask(features, self.reference)
        rows = np.flatnonzero(ready)
        out = self.predict_features(features[rows])
        result = pd.DataFrame(index=frame.index, columns=list(HISTORY_COLUMNS), dtype=np.float64)
        result["ready"] = ready
        idx = signal_indices(out.direction)
        signals = np.full(len(frame), None, dtype=object)
        signals[rows] = [SIGNALS[i].value for i in idx]
        result["signal"] = signals
        columns: dict[str, NDArray[np.float64]] = {
            "confidence": np.take_along_axis(out.direction, idx[:, None], axis=1)[:, 0].astype(
                np.float64
            ),
            "ret_mean": out.ret_mean.astype(np.float64),
            "sd": clamp_sd(out.sd),
        }
        for j, name in enumerate(MODEL_OUTPUTS["direction"]):
            columns[name] = out.direction[:, j].astype(np.float64)
        for j, name in enumerate(MODEL_OUTPUTS["regime"]):
            columns[name] = out.regime[:, j].astype(np.float64)
        for name, values in columns.items():
            full = np.full(len(frame), np.nan)
            full[rows] = values
            result[name] = full
        return result

    def close(self) -> None:
        """Stop the executor (waits for an in-flight prediction)."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> LocalPredictor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_local_models(
    models_dir: Path, settings: Settings
) -> tuple[list[LocalPredictor], SourceFailure | None]:
    """The local models by ``ml.device`` (plus a CPU copy behind a GPU), or why there are none."""
    ml = settings.ml
    failure: SourceFailure | None = None
    models: list[LocalPredictor] = []
    try:
        primary = _load_on_device(models_dir, ml.device.value)
        models.append(primary)
        if primary.source is PredictionSource.LOCAL_GPU:
            models.append(LocalPredictor.load(models_dir, "cpu"))
    except ModelNotFoundError as e:
        failure = SourceFailure("local", "models_missing", str(e))
    except ModelLoadError as e:
        failure = SourceFailure("local", "models_invalid", str(e))
    short = None if failure else history_shortfall(settings.daemon.history_bars, primary.manifest)
    if short is not None:
        failure = SourceFailure("local", "history_too_short", short)
        for model in models:
            model.close()
    if failure is not None:
        log.error("local models unusable: the chain is remote → neutral", error=failure.detail)
        return [], failure
    log.info(
        "local models loaded",
        sources=[m.source.value for m in models],
        model_version=primary.model_version,
    )
    return models, None


def _load_on_device(models_dir: Path, device: str) -> LocalPredictor:
    problem = ""
    try:
        return LocalPredictor.load(models_dir, device)
    except ConfigError as e:  # device = "cuda" without a GPU: better the CPU than nothing
        problem = str(e)
    log.error("local models cannot use the requested device; using the CPU", error=problem)
    return LocalPredictor.load(models_dir, "cpu")
