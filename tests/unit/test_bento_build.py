"""The bento build's inputs: its context, and its Python requirements (requirements.lock's pins
for `aitm[serving]`). tests/integration/test_bento.py builds and serves one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from registry.store import build_context

ROOT = Path(__file__).resolve().parents[2]
BENTO_REQUIREMENTS = ROOT / "serving" / "requirements.txt"
BENTOFILE = ROOT / "serving" / "bentofile.yaml"


def pins(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def test_serving_requirements_are_the_locks_pins_for_the_serving_extra() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "lock_subset.py"), "aitm[serving]"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert BENTO_REQUIREMENTS.read_text() == done.stdout, (
        "serving/requirements.txt is not requirements.lock's subset for aitm[serving]: "
        "run `make bento-requirements`"
    )


def test_serving_requirements_hold_cpu_torch_and_no_cuda_or_dev_tools() -> None:
    served = pins(BENTO_REQUIREMENTS)
    assert set(served) <= set(pins(ROOT / "requirements.lock"))
    assert "torch==2.13.0+cpu" in served
    names = {line.split("==")[0].lower() for line in served}
    assert {"bentoml", "ujson", "feast", "redis", "pydantic-settings"} <= names
    # CUDA's wheels (nvidia-ml-py is NVML's bindings, which bentoml reads GPU stats with).
    cuda = {n for n in names if n.startswith(("nvidia-", "triton")) and n != "nvidia-ml-py"}
    assert not cuda
    # The pipeline, monitoring and test tools stay out of the serving image.
    assert not names & {"kfp", "evidently", "pyspark", "lightgbm", "pytest", "ruff"}


def test_the_build_context_is_the_project_the_bentofile_belongs_to(tmp_path) -> None:
    assert build_context(BENTOFILE) == ROOT  # it includes src/aitm, registry/, ...
    alone = tmp_path / "serving" / "bentofile.yaml"
    alone.parent.mkdir()
    alone.write_text("service: service:Placeholder\n")
    assert build_context(alone) == alone.parent  # no project above it: its own folder
    (tmp_path / "pyproject.toml").write_text("")
    assert build_context(alone) == tmp_path
