"""A funnel nobody wrote the platform for, end to end through its dataset spec alone.

One spec (customer/offer entities, 5 steps named otherwise, string and integer ids, numeric
fields with gaps, an extra context field) drives `python -m pipelines main` (what `make run
DATASET=...` runs), then `bentoml serve` answers /rank over offers and /predict, then the
monitoring job reads the log serving wrote. Bad specs stop before any work, with exit 2 naming
the key and the column, and leave the promoted model as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import any_funnel
from tests.integration.serving_server import running_server, serving_env

# The module's run of the main job may take 900 s (its own subprocess limit).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "train:\n  max_epochs: 2\n  batch_size: 256\n  progress: false\n"


def _run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _main(spec: Path, work: Path, home: Path, config: Path) -> subprocess.CompletedProcess:
    return _run(
        [
            "-m",
            "pipelines",
            "main",
            "--dataset",
            str(spec),
            "--work",
            str(work),
            "--bentoml-home",
            str(home),
            "--config",
            str(config),
        ]
    )


@pytest.fixture(scope="module")
def funnel(tmp_path_factory):
    """The table, its spec, and one pipeline run of it (promoted into a fresh store)."""
    root = tmp_path_factory.mktemp("any-funnel")
    table = root / "lending.parquet"
    frame = any_funnel.write_table(table)
    spec = any_funnel.write_spec(root / "lending.yaml", any_funnel.spec_dict(table))
    config = root / "config.yaml"
    config.write_text(CONFIG)
    work, home = root / "pipeline", root / "bentoml"
    done = _main(spec, work, home, config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"root": root, "table": table, "frame": frame, "spec": spec, "config": config,
            "work": work, "home": home, "summary": done.stdout}  # fmt: skip


def test_the_pipeline_trains_gates_and_promotes_on_the_spec(funnel):
    summary = funnel["summary"]
    assert "gate: PROMOTE" in summary
    for task in any_funnel.TASKS:
        assert f"AUC {task}" in summary
    pointer = json.loads((funnel["home"] / "promoted" / "lending.json").read_text())
    assert pointer["tag"].startswith("lending:")
    assert pointer["feature_service"] == "lending_v1"
    from aitm.dataset import spec_of
    from aitm.inference import Predictor

    predictor = Predictor.load(funnel["home"] / pointer["path"])
    assert predictor.tasks == tuple(any_funnel.TASKS)
    assert predictor.schema.field("tenure_months").dtype == "float"
    assert predictor.schema.field("customer_id").dtype == "str"
    assert predictor.schema.field("offer_id").dtype == "int"
    carried = spec_of(predictor.schema)
    assert carried is not None and carried.name == "lending" and carried.candidate == "offer"


def _request(frame, offers):
    row = frame.iloc[0]
    return {
        "customer_id": row["customer_id"],
        "context": {"surface": "app", "slot": 1, "weekday": "Mon"},
        "candidates": [
            {"offer_id": int(o), "weight": 1.0 + i % 3, "objective": "fund"}
            for i, o in enumerate(offers)
        ],
    }


def test_serving_ranks_offers_and_monitoring_reads_its_log(funnel, tmp_path):
    frame = funnel["frame"]
    offers = sorted(frame["offer_id"].unique())[:20]
    logs, labels = tmp_path / "predictions", tmp_path / "labels"
    env = serving_env(
        funnel["home"], funnel["work"] / "feature_repo", logs, AITM_DATASET=str(funnel["spec"])
    )
    with running_server(env, tmp_path / "server.log") as client:
        answer = client.post("/rank", json=_request(frame, offers))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        ranked = body["candidates"]
        assert sorted(c["offer_id"] for c in ranked) == offers
        scores = [c["score"] for c in ranked]
        assert scores == sorted(scores, reverse=True)
        assert set(ranked[0]["probabilities"]) == set(any_funnel.TASKS)

        wrong = _request(frame, offers)
        wrong["user_id"] = wrong.pop("customer_id")  # the simulator's name: not this spec's
        refused = client.post("/rank", json=wrong)
        assert 400 <= refused.status_code < 500 and "customer_id" in refused.text

        rows = frame.drop(columns=["ts", *any_funnel.TASKS]).head(150)
        records = json.loads(rows.to_json(orient="records"))
        predicted = client.post("/predict", json={"rows": records})
        assert predicted.status_code == 200, predicted.text
        probs = predicted.json()["predictions"]
        assert len(probs) == 150 and set(probs[0]) == set(any_funnel.TASKS)
        docs = json.dumps(client.get("/docs.json").json())
        assert "customer_id" in docs and "offer_id" in docs and "user_id" not in docs

    # The labels of the /predict rows arrive (keyed by the request id serving answered with).
    from monitoring.logs import LabelWriter
    from monitoring.synthetic import label_records

    request_id = predicted.json()["request_id"]
    keys = [(request_id, i) for i in range(len(rows))]
    LabelWriter(labels).write(
        label_records(frame.head(150), keys, any_funnel.TASKS, "2026-03-20T00:00:00+00:00")
    )
    monitored = _run(
        ["-m", "monitoring", "run", "--dataset", str(funnel["spec"]), "--log-dir", str(logs),
         "--labels-dir", str(labels), "--bentoml-home", str(funnel["home"]),
         "--workspace", str(tmp_path / "evidently"), "--out", str(tmp_path / "monitoring"),
         "--window-hours", "24"],
        timeout=600,
    )  # fmt: skip
    assert monitored.returncode in (0, 1), monitored.stdout[-2000:] + monitored.stderr[-3000:]
    summary = json.loads((tmp_path / "monitoring" / "summary.json").read_text())
    text = json.dumps(summary)
    for task in any_funnel.TASKS:
        assert task in text
    assert "click" not in text and "approval" not in text


def test_serving_refuses_a_model_of_another_spec(funnel, tmp_path):
    env = serving_env(
        funnel["home"],
        funnel["work"] / "feature_repo",
        tmp_path / "logs",
        AITM_DATASET=str(ROOT / "datasets" / "simulated.yaml"),
        AITM_MODEL_TAG="lending:promoted",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:AITMService",
         "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "'lending'" in text and "'aitm'" in text


BAD_SPECS = {
    "a field the table lacks": (
        lambda s: s["entities"]["customer"]["fields"].append("income"),
        ["entities.customer.fields", "income"],
    ),
    "a field named twice": (lambda s: s["context"].append("segment"), ["segment", "context"]),
    "a field in two roles": (
        lambda s: s["entities"]["offer"]["fields"].append("region"),
        ["region", "entities.offer.fields"],
    ),
    "fewer than 2 tasks": (lambda s: s.update(tasks=["view"]), ["tasks"]),
    "a candidate that is not an entity": (lambda s: s.update(candidate="product"), ["candidate"]),
    "a numeric field holding strings": (
        lambda s: s["numeric"].append("segment"),
        ["numeric", "segment"],
    ),
    "an unknown key": (lambda s: s.update(tasks_order=["x"]), ["tasks_order", "unknown key"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_stops_before_any_work_and_keeps_the_promoted_model(funnel, case, tmp_path):
    change, words = BAD_SPECS[case]
    spec = any_funnel.spec_dict(funnel["table"])
    change(spec)
    path = any_funnel.write_spec(tmp_path / "bad.yaml", spec)
    pointer = funnel["home"] / "promoted" / "lending.json"
    before = pointer.read_bytes()
    repo_before = (funnel["work"] / "feature_repo" / "dataset.yaml").read_bytes()
    done = _main(path, funnel["work"], funnel["home"], funnel["config"])
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    for word in words:
        assert word in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert pointer.read_bytes() == before
    assert (funnel["work"] / "feature_repo" / "dataset.yaml").read_bytes() == repo_before
