"""Errors of the local models, named by what went wrong so an operator knows what to do.

Every load failure is a :class:`ModelLoadError` (a :class:`~tbotd.domain.errors.FatalError` for
the local models only): the daemon reports it and degrades to the neutral "no new risk" signal
instead of trading on a model it cannot trust. Retraining with ``tbotd train`` fixes all of them.
"""

from __future__ import annotations

from tbotd.domain.errors import FatalError, InvalidDataError


class ModelLoadError(FatalError):
    """The model directory cannot be used; the message says why and what to do."""


class ModelNotFoundError(ModelLoadError):
    """The directory, its manifest.json or a weights file is missing."""


class ManifestError(ModelLoadError):
    """manifest.json is unreadable, not JSON, or lacks/garbles a required field."""


class FormatVersionError(ModelLoadError):
    """The manifest was written by a different model format version than this tbotd reads."""


class FeatureSchemaMismatchError(ModelLoadError):
    """The models were trained on a different feature schema than this tbotd computes."""


class WeightsIntegrityError(ModelLoadError):
    """A weights file does not match its sha256 in the manifest, or is not valid safetensors."""


class InsufficientHistoryError(InvalidDataError):
    """Fewer consecutive closed candles than the models need (see ``required_history``)."""
