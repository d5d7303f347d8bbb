"""The out-of-fold statistics behind `labels_not_shuffled` and `no_label_leak`, synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.label_signal import field_label_aucs, label_signal


def _frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Two informative fields, one noise field; click depends on `a` and `b`, never on `noise`."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 20, n)
    b = pd.Categorical(rng.choice(list("pqrstu"), n))
    logit = -3.0 + 0.08 * a + 0.6 * (b.codes == 0)
    click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame({"a": a, "b": b, "noise": rng.integers(0, 50, n), "click": click})


def test_dependent_labels_have_signal_and_shuffled_ones_do_not():
    frame = _frame()
    (signal,) = label_signal(frame, ["a", "b", "noise"], ["click"])
    assert signal.positives > 1_000 and signal.auc > 0.6 and signal.z > 10
    shuffled = frame.assign(click=np.random.default_rng(1).permutation(frame["click"].to_numpy()))
    (null,) = label_signal(shuffled, ["a", "b", "noise"], ["click"])
    assert abs(null.z) < 3


def test_steps_with_too_few_positives_are_not_evaluated():
    frame = _frame().assign(rare=0)
    frame.loc[frame.index[:5], "rare"] = 1
    assert [s.task for s in label_signal(frame, ["a"], ["click", "rare"])] == ["click"]
    assert {task for _, task in field_label_aucs(frame, ["a"], ["click", "rare"])} == {"click"}


def test_a_field_copying_the_label_is_ranked_perfectly_and_no_other():
    frame = _frame()
    frame["leak"] = frame["click"].map({0: "no", 1: "yes"})
    aucs = field_label_aucs(frame, ["a", "b", "noise", "leak"], ["click"])
    assert aucs[("leak", "click")] == 1.0
    assert max(auc for (f, _), auc in aucs.items() if f != "leak") < 0.7
    assert abs(aucs[("noise", "click")] - 0.5) < 0.05


def test_sampling_caps_the_rows_used():
    frame = _frame(n=50_000)
    (capped,) = label_signal(frame, ["a", "b"], ["click"], max_rows=10_000)
    (full,) = label_signal(frame, ["a", "b"], ["click"])
    assert capped.positives < full.positives / 3
