"""The bento is the deployed unit: `bentoml build` (offline, registry.store.build_bento) carries
the code serving imports, requirements.lock's pins with the CPU torch, the model, and a
generated Dockerfile that installs them; the bento serves /rank by itself.

Docker is not available here, so `bentoml containerize` is checked through its build context:
the Dockerfile BentoML generates for it and the bento folder it copies in (`bentoml export`
holds the same files, models included).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.serving_server import ROOT, running_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENTOFILE = ROOT / "serving" / "bentofile.yaml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
IMAGE_BENTO_PATH = "/home/bentoml/bento"  # where BentoML's generated Dockerfile puts the bento
CONTEXT = {"position": 2, "hour": 9, "channel": "feed"}


@dataclass(frozen=True)
class Built:
    tag: str
    home: Path  # the BENTOML_HOME it was built in (the model store holds the shipped model)
    path: Path  # the bento folder in that store
    exported: Path  # `bentoml export` of it, unpacked: what containerize copies into the image
    containerfile: str  # the Dockerfile `bentoml containerize` builds


def _bentoml_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without the test run's PYTHONPATH: code comes from the bento."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", FEAST_USAGE="False", **extra)
    return env


@pytest.fixture(scope="module")
def built(serving_model, tmp_path_factory) -> Built:
    from registry.store import build_bento

    tmp = tmp_path_factory.mktemp("bento")
    home = tmp / "bentoml"
    shutil.copytree(serving_model.home, home)
    tag = build_bento(BENTOFILE, home, serving_model.tag)
    name, version = tag.split(":")
    archive, containerfile = tmp / "aitm.bento", tmp / "Dockerfile"
    code = (
        "import bentoml; "
        f"bentoml.export_bento({tag!r}, {str(archive)!r}); "
        f"bentoml.container.get_containerfile({tag!r}, {str(containerfile)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_bentoml_env(home), capture_output=True, text=True,
        cwd=tmp, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    exported = tmp / "image" / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(exported, filter="data")
    return Built(tag, home, home / "bentos" / name / version, exported, containerfile.read_text())


def _served_packages() -> set[str]:
    """The project's top-level packages that serving.service imports, directly or not (the
    graph import-linter checks the layer contracts on)."""
    import grimp

    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    graph = grimp.build_graph(*roots["root_packages"])
    upstream = graph.find_upstream_modules("serving.service")
    return {module.split(".")[0] for module in upstream} | {"serving"}


def test_the_bento_carries_the_code_serving_imports(built):
    src = built.path / "src"
    packages = _served_packages()
    assert {"aitm", "features", "registry", "serving"} <= packages
    for package in packages:
        assert (src / package / "__init__.py").is_file(), f"the bento lacks {package}"
    assert not {"workflow", "components", "pipelines", "monitoring"} & packages
    for absent in ("workflow", "components", "pipelines", "monitoring", "tests", "src"):
        assert not (src / absent).exists(), f"the bento carries {absent}/"
    assert (src / "serving" / "service.py").is_file()
    assert (src / "datasets" / "simulated.yaml").is_file()
    assert (src / "feature_repo" / "feature_store.yaml").is_file()
    assert not list(src.rglob("__pycache__"))
    # Run from the bento's src (BentoML's working folder), its copies win over the checkout's
    # editable install.
    code = "import aitm, features, registry, serving; print(*(m.__file__ for m in " \
        "(aitm, features, registry, serving)))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=src, env=_bentoml_env(built.home),
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for file in done.stdout.split():
        assert Path(file).resolve().is_relative_to(src.resolve()), file


def test_the_bento_installs_the_locked_requirements_with_cpu_torch(built):
    text = (built.path / "env" / "python" / "requirements.txt").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    options = [line for line in lines if line.startswith("-")]
    assert options == [f"--extra-index-url {CPU_INDEX}"]  # PyPI stays the index
    locked = (ROOT / "serving" / "requirements.txt").read_text().split()
    pins = [line for line in lines if not line.startswith("-")]
    # BentoML adds its own requirement; the lock pins the same version.
    assert pins[: len(locked)] == locked and pins[len(locked) :] == ["bentoml==1.4.40"]
    assert "torch==2.13.0+cpu" in pins


def test_the_generated_dockerfile_installs_the_lock_and_serves_the_bento(built):
    dockerfile = (built.path / "env" / "docker" / "Dockerfile").read_text()
    for text in (dockerfile, built.containerfile):
        assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm", text, re.M)
        assert f"ARG BENTO_PATH={IMAGE_BENTO_PATH}" in text
        install = text.index("pip install -r $BENTO_PATH/env/python/requirements.txt")
        # uv considers every index for each pin (torch's +cpu build is only on the CPU index).
        assert -1 < text.index("ENV UV_INDEX_STRATEGY=$UV_INDEX_STRATEGY") < install
        assert "ARG UV_INDEX_STRATEGY=unsafe-best-match" in text
        setup = re.search(r"^RUN\s+chmod \+x (\./env/docker/script__\w+) && \1$", text, re.M)
        assert setup and install < setup.start() < text.index("COPY --chown=bentoml:bentoml . ./")
        assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in text
        assert "cuda" not in text.lower()
    script = built.path / setup.group(1)
    assert script.read_text() == (ROOT / "serving" / "bento-setup.sh").read_text()
    # The model goes into the image with the bento (containerize copies it in, like export).
    model_name, model_version = _shipped_model(built)
    assert (built.exported / "models" / model_name / model_version / "manifest.json").is_file()
    assert (built.exported / "src" / "serving" / "service.py").is_file()


def _shipped_model(built: Built) -> tuple[str, str]:
    info = yaml.safe_load((built.path / "bento.yaml").read_text())
    ((model,),) = [s["models"] for s in info["services"]]
    model_name, _, model_version = model["tag"].partition(":")
    return model_name, model_version


def test_the_serving_deployment_runs_the_bento_image(built):
    """k8s runs what the generated Dockerfile builds: the bento at its BENTO_PATH."""
    docs = yaml.safe_load_all((ROOT / "k8s" / "base" / "serving.yaml").read_text())
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (c,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert c["image"] == "ghcr.io/example/aitm-serving"
    assert c["command"][:3] == ["bentoml", "serve", IMAGE_BENTO_PATH]
    port = c["command"][c["command"].index("--port") + 1]
    assert f"EXPOSE {port}" in built.containerfile


def _rank(client: httpx.Client, serving_ids, serving_model) -> None:
    from aitm.checkpoint import SCHEMA
    from aitm.schema import FeatureSchema

    tasks = FeatureSchema.from_json((serving_model.path / SCHEMA).read_text()).tasks
    users, ads = serving_ids
    body = {
        "user_id": users[0],
        "context": CONTEXT,
        "candidates": [{"ad_id": a, "weight": 1.0, "objective": tasks[-1]} for a in ads[:10]],
    }
    response = client.post("/rank", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == serving_model.tag
    assert sorted(c["ad_id"] for c in answer["candidates"]) == sorted(ads[:10])


def test_bentoml_serve_of_the_bento_tag_answers_rank(
    built, serving_model, serving_repo, serving_ids, tmp_path
):
    """`bentoml serve <tag>` from the tmp store, with no promoted pointer to lean on."""
    home = tmp_path / "bentoml"
    shutil.copytree(built.home, home)
    shutil.rmtree(home / "promoted")
    env = _bentoml_env(home, AITM_FEAST_REPO=str(serving_repo[0]),
                       AITM_PREDICTION_LOG_DIR=str(tmp_path / "logs"))  # fmt: skip
    with running_server(env, tmp_path / "serve.log", 120.0, built.tag, tmp_path) as client:
        _rank(client, serving_ids, serving_model)


def test_the_exported_bento_serves_rank_with_an_empty_store(
    built, serving_model, serving_repo, serving_ids, tmp_path
):
    """What the image does (`bentoml serve /home/bentoml/bento`): the bento's own folder, its
    shipped model, a BENTOML_HOME with no model and no pointer, the checkout out of the path."""
    home = tmp_path / "empty-home"
    home.mkdir()
    env = _bentoml_env(home, AITM_FEAST_REPO=str(serving_repo[0]),
                       AITM_PREDICTION_LOG_DIR=str(tmp_path / "logs"))  # fmt: skip
    with running_server(
        env, tmp_path / "serve.log", 120.0, str(built.exported), tmp_path
    ) as client:
        _rank(client, serving_ids, serving_model)
    assert not (home / "models").exists() or not any((home / "models").iterdir())
