"""The registry: promotion pointer and history, the reference window, rollback, and the store
check, on real artifacts in a real folder layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aitm.checkpoint import MANIFEST, WEIGHTS, ArtifactError
from registry.store import (
    RegistryError,
    history,
    pointer_path,
    promote,
    promoted,
    promoted_reference,
    rollback,
)


@pytest.fixture(scope="module")
def artifact(small_sim, tmp_path_factory) -> Path:
    from aitm.checkpoint import save_artifact
    from aitm.config import Config, TrainConfig
    from aitm.data import read_table
    from aitm.training import train

    parts = {s: read_table(small_sim / s).head(2_000) for s in ("train", "val")}
    config = Config(train=TrainConfig(max_epochs=1, progress=False))
    out = tmp_path_factory.mktemp("registry") / "artifact"
    return save_artifact(train(config, parts["train"], parts["val"]), out)


@pytest.fixture
def store(artifact, tmp_path) -> Path:
    """A BentoML home holding three copies of the artifact as aitm:v1, v2, v3."""
    home = tmp_path / "bentoml"
    for version in ("v1", "v2", "v3"):
        shutil.copytree(artifact, home / "models" / "aitm" / version)
    return home


def _promote(home: Path, version: str, **kwargs) -> None:
    promote(home, f"aitm:{version}", home / "models" / "aitm" / version, {"auc": {}}, **kwargs)


def test_each_promotion_is_recorded_with_what_it_replaced_and_its_run(store):
    _promote(store, "v1", run="run-1")
    _promote(store, "v2", run="run-2")
    records = history(store)
    assert [r["tag"] for r in records] == ["aitm:v1", "aitm:v2"]
    assert [r["action"] for r in records] == ["promote", "promote"]
    assert records[0]["replaced"] is None and records[1]["replaced"] == records[0]["id"]
    assert records[1]["replaced_tag"] == "aitm:v1" and records[1]["run"] == "run-2"
    assert json.loads(pointer_path(store).read_text()) == records[-1]
    assert promoted(store).tag == "aitm:v2"


def test_rollback_walks_back_one_promotion_at_a_time(store):
    for version in ("v1", "v2", "v3"):
        _promote(store, version)
    assert rollback(store)["tag"] == "aitm:v2"
    assert promoted(store).tag == "aitm:v2"
    assert rollback(store)["tag"] == "aitm:v1"
    with pytest.raises(RegistryError, match="first model promoted"):
        rollback(store)
    assert promoted(store).tag == "aitm:v1"
    assert [r["action"] for r in history(store)] == ["promote"] * 3 + ["rollback"] * 2


def test_a_promotion_after_a_rollback_rolls_back_to_the_rolled_back_to_model(store):
    _promote(store, "v1")
    _promote(store, "v2")
    rollback(store)
    _promote(store, "v3")
    assert rollback(store)["tag"] == "aitm:v1"


def test_rollback_refuses_a_damaged_target_and_leaves_the_pointer(store):
    _promote(store, "v1")
    _promote(store, "v2")
    (store / "models" / "aitm" / "v1" / WEIGHTS).write_bytes(b"damaged")
    before = pointer_path(store).read_text()
    with pytest.raises(ArtifactError):
        rollback(store)
    assert pointer_path(store).read_text() == before
    with pytest.raises(RegistryError, match="nothing was ever promoted"):
        rollback(store, name="other")


def test_the_reference_window_is_stored_with_the_promotion_and_read_back(store, tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "reference.json").write_text('{"rows": 3}')
    with pytest.raises(FileNotFoundError, match="no promoted model"):
        promoted_reference(store)
    _promote(store, "v1")
    with pytest.raises(FileNotFoundError, match="has no reference window"):
        promoted_reference(store)
    _promote(store, "v2", reference=reference)
    stored = promoted_reference(store)
    assert stored == store / "promoted" / "references" / "v2"
    assert json.loads((stored / "reference.json").read_text()) == {"rows": 3}
    assert promoted(store).reference == stored
    assert rollback(store)["tag"] == "aitm:v1"
    with pytest.raises(FileNotFoundError, match="has no reference window"):
        promoted_reference(store)  # the rolled-back-to model had none


def test_a_half_written_model_is_never_promoted(store):
    (store / "models" / "aitm" / "v1" / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="refusing to promote aitm:v1"):
        _promote(store, "v1")
    assert not pointer_path(store).exists() and history(store) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *args], capture_output=True,
                          text=True)  # fmt: skip


def test_the_rollback_command_moves_the_pointer_and_says_why_when_it_cannot(store):
    _promote(store, "v1")
    _promote(store, "v2")
    done = _cli("rollback", "--home", str(store), "--name", "aitm")
    assert done.returncode == 0, done.stderr
    assert "aitm:v2 -> aitm:v1" in done.stdout
    assert promoted(store).tag == "aitm:v1"
    done = _cli("rollback", "--home", str(store), "--name", "aitm")
    assert done.returncode == 2 and "first model promoted" in done.stderr
    listed = _cli("history", "--home", str(store), "--name", "aitm").stdout.splitlines()
    assert [line.split()[2] for line in listed] == ["promote", "promote", "rollback"]


def test_registering_into_another_store_than_bentoml_was_imported_with_is_refused(
    artifact, tmp_path
):
    code = (
        "import os, sys; os.environ['BENTOML_HOME'] = sys.argv[1]; import bentoml\n"
        "bentoml.models.list()  # the store is now fixed at the first home\n"
        "from registry.store import RegistryError, register\n"
        "try:\n    register(sys.argv[3], sys.argv[2], labels={}, metadata={})\n"
        "except RegistryError as exc:\n    print('refused:', exc)\n"
        "print('left:', len(bentoml.models.list()))\n"
    )
    args = [str(tmp_path / "a"), str(tmp_path / "b"), str(artifact)]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: bentoml was imported with another store" in done.stdout
    assert "left: 0" in done.stdout  # the stray copy was deleted


def test_the_pointer_stamp_changes_with_every_promote_and_rollback(store):
    from registry.store import pointer_stamp

    assert pointer_stamp(store) is None
    stamps = []
    for version in ("v1", "v2"):
        _promote(store, version)
        stamps.append(pointer_stamp(store))
    rollback(store)
    stamps.append(pointer_stamp(store))
    assert None not in stamps and len(set(stamps)) == 3
    assert pointer_stamp(store) == stamps[-1]  # reading moves nothing


def test_a_service_watches_the_pointer_unless_its_setting_pins_a_version():
    from registry.store import watched_name

    assert watched_name("", "aitm") == "aitm"
    assert watched_name("other:promoted", "aitm") == "other"
    assert watched_name("aitm:v1", "aitm") is None
