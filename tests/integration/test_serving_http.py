"""The real service: `bentoml serve` on 127.0.0.1, a real SQLite Feast store, a tiny model."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aitm.inference import Predictor
from features.fields import model_fields
from serving.prediction_log import read_log
from tests.integration.serving_server import (
    eventually,
    model_server,
    requests_in_flight,
    running_server,
    serving_env,
    start,
    stop,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTEXT = {"position": 2, "hour": 9, "channel": "feed"}
MAX_CONCURRENCY = 24  # the shared server's; more than the concurrent tests below send at once


@pytest.fixture(scope="module")
def feast_repo(serving_repo):
    return serving_repo


@pytest.fixture(scope="module")
def server(serving_model, feast_repo, tmp_path_factory):
    with model_server(
        serving_model, feast_repo[0], tmp_path_factory.mktemp("serving-run"),
        AITM_MAX_CONCURRENCY=str(MAX_CONCURRENCY),
    ) as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def predictor(serving_model):
    return Predictor.load(serving_model.path)


@pytest.fixture(scope="module")
def ids(serving_ids):
    return serving_ids


def _rows(serving_model, n: int) -> list[dict]:
    frame = pd.read_parquet(serving_model.sim / "test").head(n)[list(model_fields())]
    return json.loads(frame.to_json(orient="records"))


def _rank_body(user_id: int, ads: list[int], tasks: list[str]) -> dict:
    rng = np.random.default_rng(0)
    return {
        "user_id": user_id,
        "context": CONTEXT,
        "candidates": [
            {"ad_id": a, "weight": float(rng.uniform(0.5, 5)), "objective": tasks[i % len(tasks)]}
            for i, a in enumerate(ads)
        ],
    }


def test_predict_matches_the_predictor(server, serving_model, predictor):
    rows = _rows(serving_model, 40)
    rows[0]["city"] = "a-city-never-seen"  # unknown category: the unknown index, no error
    response = server.post("/predict", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == serving_model.tag
    assert body["tasks"] == list(predictor.tasks)
    assert response.headers["x-request-id"] == body["request_id"]
    got = pd.DataFrame(body["predictions"])[list(predictor.tasks)]
    expected = predictor.predict(pd.DataFrame(rows))
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-7)


def test_rank_orders_by_weight_times_objective_and_matches_the_predictor(
    server, ids, predictor, feast_repo
):
    from features.online import frame_of, reference_columns

    users, ads = ids
    tasks = list(predictor.tasks)
    body = _rank_body(users[0], ads, tasks)
    response = server.post("/rank", json=body)
    assert response.status_code == 200, response.text
    ranked = response.json()["candidates"]
    assert sorted(c["ad_id"] for c in ranked) == sorted(ads)
    scores = [c["score"] for c in ranked]
    assert scores == sorted(scores, reverse=True)
    frame = frame_of(reference_columns(feast_repo[1], users[0], ads, CONTEXT))  # Feast's path
    expected = predictor.predict(frame).set_axis(ads)
    by_ad = {c["ad_id"]: c for c in body["candidates"]}
    for c in ranked:
        want = expected.loc[c["ad_id"]]
        got = [c["probabilities"][t] for t in tasks]
        np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-5, atol=1e-7)
        objective = by_ad[c["ad_id"]]["objective"]
        assert c["score"] == pytest.approx(by_ad[c["ad_id"]]["weight"] * want[objective])


def test_only_predict_and_rank_are_public_apis(server):
    """The model is called in-process; no batching route (`/forward`) is exposed."""
    posts = {p for p, ops in server.get("/docs.json").json()["paths"].items() if "post" in ops}
    assert posts == {"/predict", "/rank"}
    assert server.post("/forward", json={"x": [[0] * len(model_fields())]}).status_code == 404


def test_concurrent_requests_each_get_their_own_answers(server, serving_model, predictor, ids):
    """Many /predict and /rank calls at once (batched together in the server): each answer
    is the Predictor's for its own rows."""
    from concurrent.futures import ThreadPoolExecutor

    rows = _rows(serving_model, 60)
    users, ads = ids
    expected = predictor.predict(pd.DataFrame(rows)).to_numpy()

    def call(i: int):
        if i % 3 == 2:
            body = _rank_body(users[i % len(users)], ads[i % 7 : i % 7 + 10], list(predictor.tasks))
            return "rank", None, server.post("/rank", json=body)
        return "predict", i, server.post("/predict", json={"rows": rows[i : i + 1]})

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(60)))
    for kind, i, response in results:
        assert response.status_code == 200, response.text
        if kind == "predict":
            got = [response.json()["predictions"][0][t] for t in predictor.tasks]
            np.testing.assert_allclose(got, expected[i], rtol=1e-5, atol=1e-7)
        else:
            assert len(response.json()["candidates"]) == 10


def test_requests_beyond_max_concurrency_get_429_and_probes_still_answer(server):
    """BentoML's traffic.max_concurrency: with MAX_CONCURRENCY requests in flight, another is
    refused at once with 429; health and metrics still answer, and the held ones are served."""
    empty = {"rows": []}  # 422 once admitted: cheap, so every 429 is the limit's
    with requests_in_flight(server, MAX_CONCURRENCY) as held:
        assert eventually(lambda: server.post("/predict", json=empty).status_code == 429)
        for route in ("/predict", "/rank"):
            refused = server.post(route, json=empty)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]
        for probe in ("/readyz", "/livez", "/metrics"):
            assert server.get(probe).status_code == 200, probe
    assert held == [422] * MAX_CONCURRENCY  # admitted, answered once their bodies came
    assert server.post("/predict", json=empty).status_code == 422  # the capacity is back


def test_rank_monotone_option(server, ids, predictor):
    users, ads = ids
    body = {**_rank_body(users[1], ads[:20], list(predictor.tasks)), "monotone": True}
    response = server.post("/rank", json=body)
    assert response.status_code == 200, response.text
    for c in response.json()["candidates"]:
        p = [c["probabilities"][t] for t in predictor.tasks]
        assert all(a >= b for a, b in zip(p, p[1:])), p


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda b: {**b, "user_id": "abc"}, 400, "user_id"),
        (lambda b: {**b, "user_id": 7}, 404, "user_id [7]"),
        (lambda b: {**b, "user_id": 10**30}, 400, "user_id"),
        (
            lambda b: {**b, "candidates": [{"ad_id": 3, "weight": 1.0, "objective": "click"}]},
            404,
            "ad_id [3]",
        ),
        (lambda b: {**b, "candidates": []}, 422, "candidates is empty"),
        (lambda b: {**b, "candidates": b["candidates"] * 2}, 413, "exceed the limit of 60"),
        (lambda b: {**b, "candidates": [{**b["candidates"][0], "weight": -1}]}, 400, "weight"),
        (
            lambda b: {**b, "candidates": [{**b["candidates"][0], "objective": "buy"}]},
            422,
            "unknown objective ['buy']",
        ),
        (lambda b: {**b, "context": {"position": 1, "hour": 30, "channel": "feed"}}, 400, "hour"),
        (lambda b: {k: v for k, v in b.items() if k != "context"}, 400, "context"),
    ],
)
def test_rank_rejects_bad_input_with_4xx(server, ids, predictor, change, status, message):
    users, ads = ids
    response = server.post("/rank", json=change(_rank_body(users[0], ads, list(predictor.tasks))))
    assert response.status_code == status, response.text
    assert message in response.text


def test_predict_rejects_bad_input_with_4xx(server, serving_model):
    rows = _rows(serving_model, 2)
    cases = [
        ({"rows": [{**rows[0], "colour": "red"}]}, 422, "unknown fields ['colour']"),
        ({"rows": [{k: v for k, v in rows[0].items() if k != "hour"}]}, 422, "missing fields"),
        ({"rows": [{**rows[0], "hour": "nine"}]}, 422, "field 'hour' needs int"),
        ({"rows": [{**rows[0], "ad_id": 10**30}]}, 422, "field 'ad_id' needs int"),
        ({"rows": []}, 422, "rows is empty"),
        ({"rows": rows * 300}, 413, "exceed"),
        ({"rows": "many"}, 400, "rows"),
    ]
    for body, status, message in cases:
        response = server.post("/predict", json=body)
        assert response.status_code == status, (body, response.text)
        assert message in response.text
    response = server.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "json" in response.text.lower()
    huge = json.dumps({"rows": [rows[0]] * 1_000}).encode()
    response = server.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.text


def test_prediction_log_is_complete_and_metrics_count(server, ids, predictor, serving_model):
    users, ads = ids
    row = {**_rows(serving_model, 1)[0], "city": "atlantis"}
    assert server.post("/predict", json={"rows": [row]}).status_code == 200
    body = _rank_body(users[2], ads[:5], list(predictor.tasks))
    request_id = server.post("/rank", json=body).json()["request_id"]
    deadline, records = time.monotonic() + 10, []
    while time.monotonic() < deadline and len(records) < 5:
        records = [r for r in read_log(server.log_dir) if r["request_id"] == request_id]
        time.sleep(0.1)
    assert len(records) == 5
    for record in records:
        assert record["model_version"] and record["timestamp"] and record["endpoint"] == "rank"
        assert set(record["features"]) == set(model_fields())
        assert set(record["probabilities"]) == set(predictor.tasks)
        assert record["objective"] in predictor.tasks
    assert {r["features"]["ad_id"] for r in records} == set(ads[:5])
    metrics = server.get("/metrics").text
    for name in (
        "aitm_request_latency_seconds_bucket",
        'le="0.001"',
        "aitm_monotonicity_violations_total",
        'aitm_unknown_category_values_total{field="city"}',
        "aitm_prediction_log_failures",
    ):
        assert name in metrics, name
    assert server.get("/livez").status_code == 200


def _corrupt(folder: Path) -> None:
    (folder / "weights.pt").write_bytes(b"not a model")


def _remove_weights(folder: Path) -> None:
    (folder / "weights.pt").unlink()


def _remove_model(folder: Path) -> None:
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt, "weights.pt: checksum mismatch, the file is corrupted"),
        (_remove_weights, "incomplete model artifact, missing ['weights.pt']"),
        (_remove_model, "no model folder there"),
    ],
)
def test_startup_fails_clearly_on_a_corrupted_or_missing_model(
    serving_model, feast_repo, tmp_path, damage, message
):
    home = tmp_path / "bentoml"
    shutil.copytree(serving_model.home, home)
    damage(home / serving_model.path.relative_to(serving_model.home))
    env = serving_env(home, feast_repo[0], tmp_path / "logs")
    process, _ = start(env, tmp_path / "server.log")
    try:
        assert process.wait(timeout=90) != 0
    finally:
        stop(process)
    assert message in (tmp_path / "server.log").read_text()


def test_built_bento_serves_its_shipped_model(serving_model, feast_repo, tmp_path):
    """`bentoml build` (offline) ships the model; the bento serves it without the pointer."""
    import subprocess
    import sys

    from tests.integration.serving_server import ROOT

    home = tmp_path / "bentoml"
    shutil.copytree(serving_model.home, home)
    env = serving_env(home, feast_repo[0], tmp_path / "logs")
    code = (
        "from registry.store import build_bento; "
        f"print(build_bento({str(ROOT / 'serving' / 'bentofile.yaml')!r}, {str(home)!r}, "
        f"{serving_model.tag!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    bento = done.stdout.strip().splitlines()[-1]
    shutil.rmtree(home / "promoted")  # the bento must not need the pointer
    with running_server(env, tmp_path / "bento.log", target=bento) as client:
        row = _rows(serving_model, 1)
        body = client.post("/predict", json={"rows": row}).json()
        assert body["model_version"] == serving_model.tag


def _expected_spec(tmp_path: Path, **change) -> Path:
    """The default spec's YAML with `change` applied, as a deployment's AITM_DATASET."""
    import yaml

    from aitm.dataset import DEFAULT_SPEC

    raw = {**yaml.safe_load(DEFAULT_SPEC.read_text()), **change}
    path = tmp_path / "expected.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "other"}, "was trained on dataset 'aitm' but AITM_DATASET names 'other'"),
        (
            {"tasks": ["click", "application", "approval"]},
            "but AITM_DATASET names 'aitm' with other fields, roles or tasks (fingerprint",
        ),
    ],
)
def test_startup_refuses_a_model_trained_on_another_spec(
    serving_model, feast_repo, tmp_path, change, message
):
    env = serving_env(
        serving_model.home, feast_repo[0], tmp_path / "logs",
        AITM_DATASET=str(_expected_spec(tmp_path, **change)), AITM_MODEL_TAG=serving_model.tag,
    )  # fmt: skip
    process, _ = start(env, tmp_path / "server.log")
    try:
        assert process.wait(timeout=90) != 0
    finally:
        stop(process)
    log = (tmp_path / "server.log").read_text()
    assert f"model {serving_model.tag} was trained on dataset 'aitm'" in log, log[-3000:]
    assert message in log, log[-3000:]


def test_a_deployment_naming_the_models_spec_serves_it(serving_model, feast_repo, tmp_path):
    """AITM_DATASET naming the model's own spec: served, the promoted model found by the
    spec's model name."""
    env = serving_env(
        serving_model.home, feast_repo[0], tmp_path / "logs",
        AITM_DATASET=str(_expected_spec(tmp_path)),
    )  # fmt: skip
    with running_server(env, tmp_path / "server.log") as client:
        body = client.post("/predict", json={"rows": _rows(serving_model, 1)}).json()
        assert body["model_version"] == serving_model.tag
