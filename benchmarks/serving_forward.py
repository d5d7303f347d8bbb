"""The served model's forward, side by side: eager PyTorch, `torch.export`, a TorchScript trace.

    python -m benchmarks.serving_forward [--model-dir ARTIFACT] [--repeats 1000] [--json PATH]

Without --model-dir, simulates a small funnel and trains a model on it for one epoch (the
tests' served model). Each variant is the function the service would hand its batcher: (N, F)
encoded rows in, (N, T) probabilities out, one torch thread like the service. The shapes are
/predict's (1, 100 and 1,000 rows), /rank's (50 candidates) and the batcher's largest merged
batch (2,048 rows). Calls are interleaved (every repetition runs each variant once, in a
rotating order), so a change in the host's speed reaches every variant alike. Prints the
median and p99 per variant and shape, and each variant's largest difference from eager, and
writes them as a record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aitm.inference import Predictor
from benchmarks.record import Recording, add_json_argument

Forward = Callable[[np.ndarray], np.ndarray]
# rows per call -> what the shape stands for; repetitions are scaled down for the big ones
SHAPES = {1: "predict 1 row", 50: "rank 50 candidates", 100: "predict 100 rows",
          1000: "predict 1,000 rows", 2048: "largest batch"}  # fmt: skip
MAX_ROWS = max(SHAPES)
WARMUP = 20


def _trained_predictor(rows: int) -> Predictor:
    from aitm.config import Config, TrainConfig
    from aitm.data import read_table
    from aitm.simulator import SimulationConfig, simulate
    from aitm.training import train

    out = Path(tempfile.mkdtemp(prefix="aitm-forward-"))
    simulate(SimulationConfig(rows=rows, days=6, val_days=1, test_days=1, n_users=2_000,
                              n_ads=200, chunk_rows=10_000), out)  # fmt: skip
    config = Config(train=TrainConfig(max_epochs=1, progress=False))
    result = train(config, read_table(out / "train"), read_table(out / "val"))
    return Predictor(model=result.model.eval(), schema=result.schema, config=result.config)


def _rows(predictor: Predictor, n: int, rng: np.random.Generator) -> np.ndarray:
    """Encoded rows as `schema.encode` makes them (float64 when some field is numeric)."""
    schema = predictor.schema
    x = np.stack([rng.integers(0, c, n) for c in schema.cardinalities], axis=1).astype(np.int64)
    numeric = list(schema.numeric_positions)
    if not numeric:
        return x
    x = x.astype(np.float64)
    x[:, numeric] = rng.normal(size=(n, len(numeric)))
    return x


def _wrap(module: Callable[[torch.Tensor], torch.Tensor]) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(module(torch.as_tensor(x))).numpy()

    return forward


def variants(predictor: Predictor, example: np.ndarray) -> tuple[dict[str, Forward], dict]:
    """name -> forward, and the seconds each took to prepare."""
    model = predictor.model.eval()
    x = torch.as_tensor(example)
    seconds = {}
    start = time.perf_counter()
    batch = torch.export.Dim("batch", min=1, max=MAX_ROWS)
    with torch.inference_mode():
        exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch},)).module()
    seconds["export"] = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's own deprecation notice
        traced = torch.jit.optimize_for_inference(torch.jit.trace(model, x).eval())
    seconds["torchscript"] = time.perf_counter() - start
    forwards = {"eager": _wrap(model), "export": _wrap(exported), "torchscript": _wrap(traced)}
    return forwards, seconds


def measure(forwards: dict[str, Forward], x: np.ndarray, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per call of each forward on `x`, interleaved in a rotating order."""
    names = list(forwards)
    for name in names:
        for _ in range(WARMUP):
            forwards[name](x)
    times = {name: np.empty(repeats) for name in names}
    clock = time.perf_counter
    for r in range(repeats):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start = clock()
            forwards[name](x)
            times[name][r] = clock() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=None, help="a model artifact folder")
    parser.add_argument("--rows", type=int, default=30_000, help="simulated rows to train on")
    parser.add_argument("--repeats", type=int, default=1_000, help="calls per variant, <=100 rows")
    add_json_argument(parser, "serving_forward")
    args = parser.parse_args()
    recording = Recording("serving_forward", args.json)
    torch.set_num_threads(1)  # as the service (AITM_TORCH_THREADS)
    if args.model_dir is not None:
        predictor = Predictor.load(args.model_dir)
    else:
        predictor = _trained_predictor(args.rows)
    rng = np.random.default_rng(0)
    forwards, setup = variants(predictor, _rows(predictor, 64, rng))
    shapes = {}
    for n, label in SHAPES.items():
        x = _rows(predictor, n, rng)
        reference = forwards["eager"](x)
        gaps = {k: float(np.abs(f(x) - reference).max()) for k, f in forwards.items()}
        repeats = max(args.repeats // 5, args.repeats * 100 // max(n, 100))
        times = measure(forwards, x, repeats)
        shapes[label] = {
            "rows": n,
            "repeats": repeats,
            **{
                name: {
                    "median_ms": round(float(np.median(t)) * 1e3, 4),
                    "p99_ms": round(float(np.percentile(t, 99)) * 1e3, 4),
                    "max_abs_diff_from_eager": gaps[name],
                }
                for name, t in times.items()
            },
        }
        line = ", ".join(f"{k} {v['median_ms']:.3f}/{v['p99_ms']:.3f}"
                         for k, v in shapes[label].items() if isinstance(v, dict))  # fmt: skip
        print(f"{label} ({repeats} calls), median/p99 ms: {line}", flush=True)
    figures = {
        "model": str(args.model_dir) if args.model_dir else f"trained on {args.rows} rows",
        "model_kind": predictor.config.model.kind,
        "fields": len(predictor.schema.fields),
        "tasks": len(predictor.tasks),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "setup_seconds": {k: round(v, 2) for k, v in setup.items()},
        "shapes": shapes,
    }
    print(json.dumps(figures, indent=2))
    recording.write(figures)


if __name__ == "__main__":
    main()
