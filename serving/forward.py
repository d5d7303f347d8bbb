"""The served model's forward: the eager model, one call per batch the batcher hands it.

A side-by-side run (benchmarks/serving_forward.py) found `torch.export` slower than eager
PyTorch on the service's batch sizes, and TorchScript is deprecated; so the model runs eagerly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from aitm.inference import Predictor


def model_forward(predictor: Predictor) -> Callable[[np.ndarray], np.ndarray]:
    """(N, F) encoded rows -> (N, T) probabilities, the numbers of `predictor.predict_encoded`.

    It skips what that adds for offline use, the per-call train/eval toggle and the slicing
    into evaluation batches: the batcher's calls are small, and the model stays in eval mode.
    """
    model = predictor.model.eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(model(torch.as_tensor(x))).numpy()

    return forward
