"""The base of every config section: frozen, and an unknown key is an error (a typo must not
silently fall back to a default)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config table: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)
