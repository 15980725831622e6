"""``[strategy.meta_label]``: where the meta-label model lives and the level it confirms at
(README: The ML enhancement layer, ``secondary_model = "meta_label"``).

Kept apart from :mod:`tbotd.config.settings` (which only mixes the table into the
``ml_enhanced`` config): ``models_dir`` is a directory written by ``tbotd train --meta-label``;
``threshold`` the P(take-profit first) a classic setup needs to stand (absent: the model's own,
the break-even probability of its barriers unless it was trained with ``--threshold``). The
gate is active when ``strategy.enhance.secondary_model = "meta_label"``; with ``models_dir``
set, ``tbotd backtest --compare`` also runs the meta-label-confirmed arm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MetaLabelConfig(BaseModel):
    """The meta-label model's directory, its confirmation level and the device it runs on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models_dir: Path | None = None
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda)$")] = "cpu"


class MetaLabelTable(BaseModel):
    """The table, optional; a ``meta_label`` secondary model without ``models_dir`` is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meta_label: MetaLabelConfig = MetaLabelConfig()

    @model_validator(mode="after")
    def _needs_a_model(self) -> Any:
        enhance = getattr(self, "enhance", None)
        wanted = str(getattr(enhance, "secondary_model", "")) == "meta_label"
        if wanted and self.meta_label.models_dir is None:
            raise ValueError(
                'secondary_model = "meta_label" needs [strategy.meta_label] models_dir: a '
                "directory written by `tbotd train --meta-label`"
            )
        return self
