"""A small table trains with smaller batches, so an epoch still takes enough optimizer steps;
a large one keeps the configured batch size."""

from __future__ import annotations

import pytest

from aitm.config import TrainConfig
from aitm.training import effective_batch_size


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(900_000, 2000), (200_000, 2000), (150_000, 1500), (4_800, 48), (108, 16), (0, 16)],
)
def test_the_batch_shrinks_to_give_an_epoch_its_steps(rows, expected):
    assert effective_batch_size(TrainConfig(), rows) == expected


def test_the_rule_can_be_turned_off_and_never_grows_the_batch():
    assert effective_batch_size(TrainConfig(min_steps_per_epoch=0), 4_800) == 2000
    assert effective_batch_size(TrainConfig(batch_size=32), 1_000_000) == 32
