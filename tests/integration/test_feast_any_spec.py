"""A funnel with other names end to end through a real Feast store: entities customer (string
ids) and offer (int ids), a numeric attribute, a request field and a per-candidate field.

Everything (entities, views, the feature service, the project, types) comes from the spec at
run time; one repo is built, applied and materialized per module.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aitm.dataset import ROW_ID, SNAPSHOT_TIME, DatasetSpec, SpecError
from features.build import build_sources, entity_ids, source_ids
from features.fields import DATASET_FILE, repo_spec
from features.online import MissingEntityError, OnlineFeatureReader, reference_columns
from features.retrieval import output_columns, training_frame
from features.store import apply, materialize, open_store
from features.validation import validate
from tests.conftest import REPO_ROOT, copy_repo

pytestmark = pytest.mark.integration

SPEC_YAML = """
name: offer-shop
table: table.parquet
timestamp: ts
tasks: [view, cart, buy]
entities:
  customer: {key: customer_id, fields: [segment, region]}
  offer: {key: offer_id, fields: [category, price]}
context: [device_type]
candidate_context: [distance]
numeric: [price, distance]
candidate: offer
ranges: {distance: [0, 10]}
floors: {min_rows: 50}
"""
START = pd.Timestamp("2025-06-01", tz="UTC")
N_ROWS = 4_000
CHANGE_AT = START + pd.Timedelta(days=2)  # some customers change segment here


def _world(seed: int = 0) -> pd.DataFrame:
    """Impressions with the attributes valid at their time carried inline, labels in funnel
    order that depend on the segment, the category and the distance."""
    rng = np.random.default_rng(seed)
    customers = [f"c{i:04d}" for i in range(150)]
    segment0 = {c: rng.choice(["new", "loyal", "lapsed"]) for c in customers}
    movers = set(customers[::5])  # every fifth customer becomes loyal at CHANGE_AT
    region = {c: rng.choice(["north", "south"]) for c in customers}
    offers = list(range(1, 41))
    category = {o: ["food", "tech", "home", "toys"][o % 4] for o in offers}
    price = {o: float(rng.integers(5, 200)) + 0.25 for o in offers}
    price[7] = np.nan  # a numeric attribute may be missing
    ts = START + pd.to_timedelta(np.sort(rng.choice(5 * 86_400, N_ROWS, replace=False)), "s")
    rows = pd.DataFrame(
        {
            "customer_id": rng.choice(customers, N_ROWS),
            "offer_id": rng.choice(offers, N_ROWS),
            "ts": ts,
            "device_type": rng.choice(["mobile", "desktop"], N_ROWS),
            "distance": np.round(rng.uniform(0, 10, N_ROWS), 1),
        }
    )
    moved = rows["customer_id"].isin(movers) & (rows["ts"] >= CHANGE_AT)
    rows["segment"] = rows["customer_id"].map(segment0).where(~moved, "loyal")
    rows["region"] = rows["customer_id"].map(region)
    rows["category"] = rows["offer_id"].map(category)
    rows["price"] = rows["offer_id"].map(price)
    lift = rows["segment"].map({"new": -0.8, "loyal": 1.0, "lapsed": -0.2}) + rows["category"].map(
        {"food": 0.6, "tech": -0.6, "home": 0.0, "toys": 0.3}
    )
    p_view = 1 / (1 + np.exp(-(-0.6 + lift - 0.05 * rows["distance"])))
    view = rng.random(N_ROWS) < p_view
    cart = view & (rng.random(N_ROWS) < 1 / (1 + np.exp(-(-0.3 + lift))))
    buy = cart & (rng.random(N_ROWS) < 0.5)
    for name, values in (("view", view), ("cart", cart), ("buy", buy)):
        rows[name] = values.astype("int8")
    return rows


@dataclass(frozen=True)
class Built:
    spec: DatasetSpec
    repo: Path
    truth: pd.DataFrame  # the generated impressions, in time order
    store: object


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[DatasetSpec, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("offer-shop")
    truth = _world()
    truth.to_parquet(folder / "table.parquet", index=False)
    (folder / "offer-shop.yaml").write_text(SPEC_YAML)
    return DatasetSpec.from_yaml(folder / "offer-shop.yaml"), truth


@pytest.fixture(scope="module")
def built(world, tmp_path_factory) -> Built:
    spec, truth = world
    repo = copy_repo(tmp_path_factory.mktemp("offer-feast") / "feature_repo")
    build_sources(spec, repo)
    apply(repo)
    store = open_store(repo)
    materialize(store, START - pd.Timedelta(days=1), START + pd.Timedelta(days=10))
    return Built(spec=spec, repo=repo, truth=truth, store=store)


def test_build_resolves_types_and_names_the_project(built):
    written = repo_spec(built.repo)
    assert (built.repo / DATASET_FILE).is_file()
    assert written.types["customer_id"] == "str" and written.types["offer_id"] == "int"
    assert written.field_type("price") == "float" and written.types["segment"] == "str"
    assert "project: offer_shop\n" in (built.repo / "feature_store.yaml").read_text()
    assert "project: offer_shop\n" in (built.repo / "feature_store.redis.yaml").read_text()
    snapshots = pd.read_parquet(built.repo / "data" / "customers.parquet")
    assert list(snapshots.columns) == ["customer_id", "ts", "segment", "region"]
    assert snapshots["customer_id"].map(type).eq(str).all()
    # customers whose segment changed have a second snapshot from CHANGE_AT on
    changed = built.truth.groupby("customer_id")["segment"].nunique().gt(1).sum()
    assert snapshots["customer_id"].duplicated().sum() == changed > 10
    offers = pd.read_parquet(built.repo / "data" / "offers.parquet")
    assert offers["price"].dtype == np.float64 and offers["price"].isna().any()
    users, offer_ids = source_ids(built.repo)
    assert set(users) == set(built.truth["customer_id"])
    assert list(entity_ids(built.repo)) == ["customer", "offer"]
    assert set(offer_ids) == set(built.truth["offer_id"])


def test_feast_objects_come_from_the_spec(built):
    from feast import ValueType

    store = built.store
    assert store.project == "offer_shop"
    service = store.get_feature_service("offer_shop_v1")
    assert sorted(p.name for p in service.feature_view_projections) == [
        "customer_features",
        "offer_features",
    ]
    assert store.get_entity("customer").value_type == ValueType.STRING
    assert store.get_entity("offer").value_type == ValueType.INT64
    types = {f.name: str(f.dtype) for f in store.get_feature_view("offer_features").features}
    assert types == {"category": "String", "price": "Float64"}


def test_training_frame_is_point_in_time_correct(built):
    result = training_frame(built.store, built.repo, START, START + pd.Timedelta(days=6))
    frame = result.frame
    assert result.missing == 0 and len(frame) == N_ROWS
    assert list(frame.columns) == output_columns(built.spec)
    truth = built.truth.reset_index(drop=True)
    truth[ROW_ID] = np.arange(len(truth))  # numbered in time order by the build
    merged = frame.merge(truth, on=ROW_ID, suffixes=("", "_truth"), validate="one_to_one")
    for name in ["customer_id", "offer_id", "segment", "region", "category", "device_type"]:
        assert (merged[name] == merged[f"{name}_truth"]).all(), name
    for name in ["price", "distance"]:
        pd.testing.assert_series_equal(
            merged[name], merged[f"{name}_truth"], check_names=False, check_dtype=False
        )
    for task in built.spec.tasks:
        assert (merged[task] == merged[f"{task}_truth"]).all(), task
    # the check can fail: many impressions come before their customer's segment changed
    latest = truth.groupby("customer_id")["segment"].last()
    assert (merged["segment"] != merged["customer_id"].map(latest)).sum() > 50


def test_online_reader_returns_latest_values_per_candidate(built):
    reader = OnlineFeatureReader(built.store)  # spec and service from the repo
    assert reader.service == "offer_shop_v1"
    latest = built.truth.sort_values("ts").groupby("customer_id").last()
    offers = built.truth.groupby("offer_id").last()
    customer = latest.index[5]
    candidates = [3, 7, 12, 3]
    context = {"device_type": "mobile", "distance": [1.5, 2.5, 3.5, 4.5]}
    columns = reader.columns({"customer_id": customer}, candidates, context)
    assert list(columns) == built.spec.fields
    assert columns["customer_id"] == [customer] * 4
    assert columns["offer_id"] == candidates
    assert columns["segment"] == [latest.loc[customer, "segment"]] * 4
    assert columns["region"] == [latest.loc[customer, "region"]] * 4
    assert columns["category"] == offers.loc[candidates, "category"].tolist()
    price = offers.loc[candidates, "price"].tolist()
    assert columns["price"][0] == price[0] and columns["price"][2] == price[2]
    assert columns["price"][1] is None  # offer 7 has no price: present, value missing
    assert columns["device_type"] == ["mobile"] * 4
    assert columns["distance"] == [1.5, 2.5, 3.5, 4.5]
    # Feast's own get_online_features gives the same columns
    assert reference_columns(built.store, {"customer_id": customer}, candidates, context) == (
        columns
    )


def test_online_reader_names_missing_ids_and_bad_requests(built):
    reader = OnlineFeatureReader(built.store, spec=built.spec)
    known = built.truth["customer_id"].iloc[0]
    context = {"device_type": "mobile", "distance": [1.0, 2.0]}
    with pytest.raises(MissingEntityError) as caught:
        reader.columns({"customer_id": "nobody"}, [3, 999], context)
    assert caught.value.missing == {"customer_id": ["nobody"], "offer_id": [999]}
    with pytest.raises(MissingEntityError) as caught:
        reference_columns(built.store, {"customer_id": "nobody"}, [3, 999], context)
    assert caught.value.missing == {"customer_id": ["nobody"], "offer_id": [999]}
    with pytest.raises(ValueError, match="candidate context field 'distance'"):
        reader.columns({"customer_id": known}, [3, 4], {"device_type": "mobile", "distance": 1})
    with pytest.raises(ValueError, match=r"lacks \['customer_id'\]"):
        reader.columns({"user_id": 1}, [3, 4], context)
    with pytest.raises(ValueError, match="offer_id: 'x' is not an integer id"):
        reader.columns({"customer_id": known}, ["x", 4], context)


def test_cli_online_takes_keys_and_context_generically(built):
    done = subprocess.run(
        [sys.executable, "-m", "features", "online", "--repo", str(built.repo),
         "--key", f"customer_id={built.truth['customer_id'].iloc[0]}", "--candidates", "3,12",
         "--context", "device_type=desktop", "--context", "distance=0.5,9.5"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    header = done.stdout.splitlines()[0].split()
    assert header == built.spec.fields
    assert "desktop" in done.stdout and "9.5" in done.stdout


def test_cli_refuses_a_bad_spec_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC_YAML.replace("candidate: offer", "candidate: shop"))
    done = subprocess.run(
        [sys.executable, "-m", "features", "build", "--dataset", str(bad), "--repo", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "candidate" in done.stderr and "'shop'" in done.stderr


# -- bad tables fail at build, naming the spec key and the column ----------------------------


def test_build_names_a_missing_column(world, tmp_path, fresh_repo):
    spec, truth = world
    truth.drop(columns=["category"]).to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(SpecError, match=r"entities\.offer\.fields: column 'category'"):
        build_sources(spec, fresh_repo, tmp_path / "t.parquet")


def test_build_refuses_strings_in_a_numeric_column(world, tmp_path, fresh_repo):
    spec, truth = world
    bad = truth.assign(price=truth["price"].astype(object))
    bad.loc[0, "price"] = "cheap"
    bad.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SpecError, match=r"numeric: column 'price'"):
        build_sources(spec, fresh_repo, tmp_path / "t.csv")


def test_build_without_a_time_column_puts_rows_just_after_the_snapshot_time(
    world, tmp_path, fresh_repo
):
    spec, truth = world
    folder = tmp_path / "csvs"
    folder.mkdir()
    plain = truth.drop(columns=["ts"])
    plain.iloc[:2000].to_csv(folder / "a.csv", index=False)
    plain.iloc[2000:].to_csv(folder / "b.csv", index=False)
    untimed = DatasetSpec.parse({**spec.model_dump(mode="json", exclude={"base_dir"}),
                                 "timestamp": None, "table": str(folder)})  # fmt: skip
    summary = build_sources(untimed, fresh_repo)
    impressions = pd.read_parquet(fresh_repo / "data" / "impressions.parquet")
    assert summary.impressions == N_ROWS
    # Snapshots at the one time; impressions a microsecond apart after it, in table order, so
    # Feast (one entity row per key and time) keeps every one of them.
    after = impressions["event_timestamp"] - pd.Timestamp(SNAPSHOT_TIME)
    assert (after == pd.to_timedelta(range(1, N_ROWS + 1), unit="us")).all()
    offer_times = pd.read_parquet(fresh_repo / "data" / "offers.parquet")["event_timestamp"]
    assert (offer_times == pd.Timestamp(SNAPSHOT_TIME)).all()
    assert impressions[ROW_ID].tolist() == list(range(N_ROWS))
    offers = pd.read_parquet(fresh_repo / "data" / "offers.parquet")
    assert offers["offer_id"].is_unique  # one snapshot per entity at the one time


# -- the Great Expectations suite of this spec ------------------------------------------------


@pytest.fixture(scope="module")
def frames(built):
    frame = training_frame(built.store, built.repo, START, START + pd.Timedelta(days=6)).frame
    cut = START + pd.Timedelta(days=4)
    return frame[frame["ts"] < cut].reset_index(drop=True), frame[frame["ts"] >= cut]


def test_suite_of_the_spec_passes_on_clean_data(built, frames):
    reference, clean = frames
    assert len(clean) < 1_000  # the spec's floors.min_rows (50) replaces the default 1,000
    result = validate(clean, reference, spec=built.spec, raise_on_failure=False)
    assert result.success, result.describe()
    checked = result.evaluated
    assert checked > 40


@pytest.mark.parametrize("pair", [("view", "cart"), ("cart", "buy")])
def test_suite_of_the_spec_fails_a_broken_funnel_pair(built, frames, pair):
    reference, clean = frames
    upper, lower = pair
    broken = clean.copy()
    rows = broken.index[(broken[upper] == 0).to_numpy()][:10]
    broken.loc[rows, lower] = 1
    result = validate(broken, reference, spec=built.spec, raise_on_failure=False)
    assert not result.success
    failed = {(f.expectation, f.column) for f in result.failed}
    assert ("expect_column_pair_values_a_to_be_greater_than_b", f"{upper}>={lower}") in failed


def test_suite_checks_numeric_ranges_from_spec_and_reference(built, frames):
    reference, clean = frames
    broken = clean.copy()
    broken.loc[broken.index[:3], "distance"] = 11.0  # the spec's range is [0, 10]
    broken.loc[broken.index[3:5], "price"] = 10_000.0  # outside the reference's observed range
    result = validate(broken, reference, spec=built.spec, raise_on_failure=False)
    failed = {(f.expectation, f.column) for f in result.failed}
    assert ("expect_column_values_to_be_between", "distance") in failed
    assert ("expect_column_values_to_be_between", "price") in failed
