"""What the local models answer for N feature rows — plain numpy, no torch, so the remote
clients (which decode the same outputs from a server) never import torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ModelOutputs:
    """Outputs for N feature rows, as float32 numpy arrays."""

    direction: NDArray[np.float32]  # [N, 3] P(down, neutral, up)
    ret_mean: NDArray[np.float32]  # [N]
    sd: NDArray[np.float32]  # [N]
    regime: NDArray[np.float32]  # [N, 3] P(trend-down, sideways, trend-up)
