"""LightGBM baseline: one gradient-boosted classifier per funnel step on the encoded fields.

Each task's model learns the END-TO-END label of its step from the (N, F) field indices the
neural models embed, with every categorical field declared categorical (LightGBM's native
categorical splits) and numeric fields passed as real values (NaN is LightGBM's missing value).
Early stopping watches the validation log loss of that task. Nothing ties the steps together,
so the funnel order is not guaranteed: the violation rate shows how often it breaks.
LightGBM is imported inside the functions: it is an optional dependency (`aitm[baselines]`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GBDTConfig:
    learning_rate: float = 0.05
    num_leaves: int = 63
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    min_child_samples: int = 20  # LightGBM's default
    subsample: float = 1.0  # bagging off (LightGBM's default); seeds still differ (1M rows)
    colsample_bytree: float = 1.0
    reg_lambda: float = 0.0
    # LightGBM's defaults for categorical splits, written out so the table says what ran.
    cat_smooth: float = 10.0
    cat_l2: float = 10.0
    min_data_per_group: int = 100
    max_cat_threshold: int = 32
    seed: int = 0
    num_threads: int = 0  # 0: LightGBM's default (all cores); set it for repeatable timing

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.num_leaves < 2 or self.max_rounds < 1:
            raise ValueError(
                "need learning_rate > 0, num_leaves >= 2 and max_rounds >= 1, got "
                f"{self.learning_rate}, {self.num_leaves}, {self.max_rounds}"
            )
        if self.early_stopping_rounds < 1:
            raise ValueError(
                f"early_stopping_rounds must be >= 1, got {self.early_stopping_rounds}"
            )

    def lightgbm_params(self) -> dict[str, Any]:
        """Keyword arguments of `lightgbm.LGBMClassifier`."""
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "n_estimators": self.max_rounds,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "cat_smooth": self.cat_smooth,
            "cat_l2": self.cat_l2,
            "min_data_per_group": self.min_data_per_group,
            "max_cat_threshold": self.max_cat_threshold,
            "random_state": self.seed,
            "n_jobs": self.num_threads if self.num_threads > 0 else None,
            "deterministic": True,
            "force_row_wise": True,  # with `deterministic`, repeatable across runs
            "verbose": -1,
        }


@dataclass
class GBDTResult:
    models: list[Any]  # a fitted LGBMClassifier per task, or None for a task with one class
    tasks: tuple[str, ...]
    config: GBDTConfig
    best_rounds: dict[str, int]
    seconds: float  # fitting time, all tasks
    constant: dict[str, float] = field(default_factory=dict)  # tasks with one training class
    numeric: tuple[int, ...] = ()  # positions of the real-valued (numeric) fields

    @property
    def settings(self) -> dict[str, Any]:
        """What ran, for the benchmark table: the config and each task's best round."""
        return {**asdict(self.config), "best_rounds": dict(self.best_rounds)}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, F) field indices -> (N, T) end-to-end probabilities, one model per task."""
        x = np.asarray(x)
        out = np.empty((len(x), len(self.tasks)), dtype=np.float64)
        frame = _frame(x, self.numeric)
        for t, (task, model) in enumerate(zip(self.tasks, self.models)):
            if model is None:
                out[:, t] = self.constant[task]
            else:
                out[:, t] = model.predict_proba(frame)[:, 1]
        return out


def _frame(x: np.ndarray, numeric: Sequence[int] = ()):
    """Field indices as a frame of int32 columns (LightGBM's categorical codes are int32), the
    numeric fields as float64 columns."""
    import pandas as pd

    x = np.asarray(x)
    columns = [f"f{j}" for j in range(x.shape[1])]
    if not numeric:
        return pd.DataFrame(np.asarray(x, dtype=np.int32), columns=columns)
    return pd.DataFrame(
        {
            name: x[:, j].astype(np.float64 if j in numeric else np.int32)
            for j, name in enumerate(columns)
        }
    )


def _eval_arguments(model: Any, x_val: Any, y_val: np.ndarray) -> dict[str, Any]:
    """The validation set as this LightGBM version takes it (4.7 renamed eval_set)."""
    if "eval_X" in inspect.signature(model.fit).parameters:
        return {"eval_X": (x_val,), "eval_y": (y_val,)}
    return {"eval_set": [(x_val, y_val)]}


def fit_per_task(
    tasks: list[str] | tuple[str, ...],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: GBDTConfig | None = None,
    numeric: Sequence[int] = (),
) -> GBDTResult:
    """One LGBMClassifier per task on (N, F) field indices, early-stopped on val. Every field is
    categorical except those at the positions `numeric` (`FeatureSchema.numeric_positions`),
    which are real-valued.

    y_train, y_val: (N, T) end-to-end labels. A task whose training labels hold one class gets
    that class's rate as a constant prediction (LightGBM cannot fit it).
    """
    import lightgbm as lgb

    config = config or GBDTConfig()
    tasks = tuple(tasks)
    if y_train.shape[1] != len(tasks) or y_val.shape[1] != len(tasks):
        raise ValueError(
            f"labels need one column per task {tasks}, got {y_train.shape}, {y_val.shape}"
        )
    if x_train.shape[1] != x_val.shape[1]:
        raise ValueError(f"train and val field counts differ: {x_train.shape}, {x_val.shape}")
    numeric = tuple(sorted(set(numeric)))
    if numeric and not 0 <= numeric[0] <= numeric[-1] < x_train.shape[1]:
        raise ValueError(f"numeric positions {numeric} outside the {x_train.shape[1]} fields")
    train_frame, val_frame = _frame(x_train, numeric), _frame(x_val, numeric)
    categorical = [c for j, c in enumerate(train_frame.columns) if j not in numeric]
    models: list[Any] = []
    best_rounds: dict[str, int] = {}
    constant: dict[str, float] = {}
    start = time.perf_counter()
    for t, task in enumerate(tasks):
        y = np.asarray(y_train[:, t]).astype(np.int32)
        if y.min() == y.max():
            models.append(None)
            constant[task] = float(y[0])
            best_rounds[task] = 0
            continue
        model = lgb.LGBMClassifier(**config.lightgbm_params())
        y_eval = np.asarray(y_val[:, t]).astype(np.int32)
        model.fit(
            train_frame,
            y,
            **_eval_arguments(model, val_frame, y_eval),
            eval_metric="binary_logloss",
            categorical_feature=categorical,
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
        models.append(model)
        best_rounds[task] = int(model.best_iteration_ or config.max_rounds)
    seconds = time.perf_counter() - start
    return GBDTResult(models, tasks, config, best_rounds, seconds, constant, numeric)
