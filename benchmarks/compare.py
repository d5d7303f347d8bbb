"""Compare AITM, its ablations and the baselines on one funnel: one command, one table, one plot.

    python -m benchmarks.compare                                   # 3M simulated rows, 3 seeds
    python -m benchmarks.compare --rows 500000 --seeds 1 --models aitm,mlp,lightgbm
    python -m benchmarks.compare --data my_table.parquet --config my_config.yaml

Every neural model shares the feature schema, the embedding, the training loop (early stopping
on the sum of validation AUCs, best weights restored) and the evaluation; they differ only in
the network between embedding and heads, and in the loss: AITM variants use the configured
calibrator weight, the baselines plain cross-entropy (the calibrator is part of AITM). LightGBM
fits one classifier per task on the same encoded fields.

Simulated data (default): `aitm.simulator.simulate` with the default world (seed 0), split by
time into train/val/test; the true probabilities give the oracle AUC. Bring your own data:
`--data` names a table (Parquet, folder of Parquet parts, or CSV) or a folder with train/, val/
and test/ (what `aitm.ali_ccp.convert` writes); `--config` is an `aitm.config.Config` YAML whose
data section names the fields and tasks. A single table is split by its timestamp (or randomly
when the config has none): the last 10% is the test split, the 10% before it validation.

Writes to --out: compare.md (the table), compare.json (every run), compare_auc.png (AUC per task
and model, mean and std over seeds) and runs.jsonl, one line per finished run: rerunning the
same command into the same folder reuses those runs, so an interrupted comparison resumes
(and commands with different --models can share a folder and run side by side).
Seeds vary model initialisation and batch order; the data stay the same. The summary per model
is also written as a record (benchmarks/record.py; `--json PATH`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from aitm.config import Config
from aitm.data import DataError, EncodedData, encode, load_split, split_paths, time_split
from aitm.evaluation import evaluate
from aitm.inference import predict_proba
from aitm.schema import FeatureSchema, fit_schema
from aitm.training import train_encoded
from benchmarks.record import Recording, add_json_argument

# name -> (model section updates, loss section updates); "lightgbm" is handled apart.
NEURAL_MODELS: dict[str, tuple[dict, dict]] = {
    "aitm": ({"kind": "aitm", "transfer": "ait"}, {}),
    "aitm-no-ait": ({"kind": "aitm", "transfer": "none"}, {}),
    "aitm-no-calibrator": ({"kind": "aitm", "transfer": "ait"}, {"calibrator_weight": 0.0}),
    "aitm-probability-transfer": ({"kind": "aitm", "transfer": "probability"}, {}),
    "mlp": ({"kind": "mlp"}, {"calibrator_weight": 0.0}),
    "esmm": ({"kind": "esmm"}, {"calibrator_weight": 0.0}),
    "omoe": ({"kind": "omoe"}, {"calibrator_weight": 0.0}),
    "mmoe": ({"kind": "mmoe"}, {"calibrator_weight": 0.0}),
    "ple": ({"kind": "ple"}, {"calibrator_weight": 0.0}),
}
ALL_MODELS = (*NEURAL_MODELS, "lightgbm")


@dataclass
class Splits:
    config: Config
    schema: FeatureSchema  # fitted on the training split, shared by every model
    train: EncodedData
    val: EncodedData
    test: EncodedData
    source: str

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.schema.tasks


@dataclass
class Run:
    model: str
    seed: int
    auc: dict[str, float]
    violation_rate: float
    train_seconds: float  # wall time of the fit, validation passes included
    rows_per_second: float  # see the table's footnote
    best: str  # best epoch of epochs run, or LightGBM's best rounds
    settings: dict = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="simulated impressions")
    parser.add_argument("--seeds", type=int, default=3, help="runs per model, seeds 0..n-1")
    parser.add_argument(
        "--models", default=",".join(ALL_MODELS), help=f"comma-separated, from {ALL_MODELS}"
    )
    parser.add_argument("--out", type=Path, default=Path("artifacts/compare"), help="output folder")
    parser.add_argument("--data", type=Path, default=None, help="your own table or split folder")
    parser.add_argument("--config", type=Path, default=None, help="Config YAML (with --data)")
    parser.add_argument("--epochs", type=int, default=None, help="override train.max_epochs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    add_json_argument(parser, "compare")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(ALL_MODELS))
    if unknown or not models:
        parser.error(f"unknown models {unknown}; choose from {', '.join(ALL_MODELS)}")
    if args.seeds < 1 or args.rows < 1:
        parser.error("--seeds and --rows must be >= 1")
    if args.config is not None and args.data is None:
        parser.error("--config describes your own table: give --data too")
    args.models = models
    return args


def _base_config(args: argparse.Namespace) -> Config:
    config = Config.from_yaml(args.config) if args.config else Config()
    raw = config.model_dump()
    raw["train"]["progress"] = False
    if args.epochs is not None:
        raw["train"]["max_epochs"] = args.epochs
    return Config.model_validate(raw)


def _simulated_folder(rows: int, out: Path) -> Path:
    from aitm.simulator import SimulationConfig, simulate

    folder = out / f"data-sim-{rows}"
    if not (folder / "oracle.json").exists():
        print(f"simulating {rows:,} impressions into {folder} ...", file=sys.stderr)
        simulate(SimulationConfig(rows=rows), folder)
    return folder


def load_splits(args: argparse.Namespace) -> Splits:
    config = _base_config(args)
    path = args.data if args.data is not None else _simulated_folder(args.rows, args.out)
    parts = split_paths(path)
    if parts and set(parts) != {"train", "val", "test"}:
        raise DataError(
            f"{path}: a split folder needs train/, val/ and test/; found {sorted(parts)}"
        )
    if parts:
        frames = {s: load_split(parts[s], config.data) for s in ("train", "val", "test")}
    else:
        frame = load_split(path, config.data)
        rest, test = time_split(frame, config.data.timestamp, seed=config.train.seed)
        train, val = time_split(rest, config.data.timestamp, val_fraction=1 / 9, seed=1)
        frames = {"train": train, "val": val, "test": test}
    schema = fit_schema(frames["train"], config)
    encoded = {s: encode(f, schema) for s, f in frames.items()}
    return Splits(config, schema, encoded["train"], encoded["val"], encoded["test"], str(path))


def _model_config(base: Config, name: str, seed: int) -> Config:
    model_updates, loss_updates = NEURAL_MODELS[name]
    raw = base.model_dump()
    raw["model"].update(model_updates)
    raw["loss"].update(loss_updates)
    raw["train"]["seed"] = seed
    return Config.model_validate(raw)


def run_neural(splits: Splits, name: str, seed: int) -> Run:
    config = _model_config(splits.config, name, seed)
    start = time.perf_counter()
    result = train_encoded(config, splits.schema, splits.train, splits.val)
    seconds = time.perf_counter() - start
    probs = predict_proba(result.model, splits.test.x, config.train.eval_batch_size)
    ev = evaluate(splits.tasks, splits.test.y, probs)
    return Run(
        model=name,
        seed=seed,
        auc=ev.auc,
        violation_rate=ev.violation_rate,
        train_seconds=seconds,
        rows_per_second=result.samples_per_second,
        best=f"epoch {result.best_epoch}/{len(result.history)}",
    )


def run_lightgbm(splits: Splits, seed: int, threads: int) -> Run:
    from aitm.gbdt import GBDTConfig, fit_per_task

    config = GBDTConfig(seed=seed, num_threads=threads)
    start = time.perf_counter()
    fit = fit_per_task(
        splits.tasks,
        splits.train.x,
        splits.train.y,
        splits.val.x,
        splits.val.y,
        config,
        numeric=splits.schema.numeric_positions,
    )
    seconds = time.perf_counter() - start
    ev = evaluate(splits.tasks, splits.test.y, fit.predict_proba(splits.test.x))
    rounds = ",".join(str(r) for r in fit.best_rounds.values())
    return Run(
        model="lightgbm",
        seed=seed,
        auc=ev.auc,
        violation_rate=ev.violation_rate,
        train_seconds=seconds,
        rows_per_second=len(splits.train) / seconds,
        best=f"rounds {rounds}",
        settings=fit.settings,
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if np.isnan(arr).all():
        return float("nan"), float("nan")
    return float(np.nanmean(arr)), float(np.nanstd(arr))


def _fmt(mean: float, std: float, seeds: int) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"


def summarise(runs: list[Run], tasks: tuple[str, ...], oracle: dict[str, float] | None) -> dict:
    """Per model: AUC mean and std per task, mean gap to the oracle, violation rate, speed."""
    summary = {}
    for name in dict.fromkeys(r.model for r in runs):
        mine = [r for r in runs if r.model == name]
        auc = {t: _mean_std([r.auc[t] for r in mine]) for t in tasks}
        gap = None
        if oracle is not None:
            gaps = [np.mean([oracle[t] - r.auc[t] for t in tasks]) for r in mine]
            gap = _mean_std(gaps)
        summary[name] = {
            "seeds": len(mine),
            "auc": auc,
            "gap_to_oracle": gap,
            "violation_rate": _mean_std([r.violation_rate for r in mine]),
            "train_seconds": _mean_std([r.train_seconds for r in mine]),
            "rows_per_second": _mean_std([r.rows_per_second for r in mine]),
            "best": "; ".join(r.best for r in mine),
        }
    return summary


def markdown_table(
    summary: dict, tasks: tuple[str, ...], oracle: dict[str, float] | None, header: str
) -> str:
    columns = [
        "model",
        *(f"AUC {t}" for t in tasks),
        "gap to oracle",
        "violation rate",
        "train s",
        "rows/s",
        "best",
    ]
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, s in summary.items():
        n = s["seeds"]
        gap = "n/a" if s["gap_to_oracle"] is None else _fmt(*s["gap_to_oracle"], n)
        cells = [
            name,
            *(_fmt(*s["auc"][t], n) for t in tasks),
            gap,
            f"{s['violation_rate'][0]:.4f}",
            f"{s['train_seconds'][0]:,.0f}",
            f"{s['rows_per_second'][0]:,.0f}",
            s["best"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if oracle is not None:
        cells = ["oracle (true p)", *(f"{oracle[t]:.4f}" for t in tasks), "0", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "AUC: exact, on the test split, mean ± std over seeds. Gap to oracle: mean over tasks of "
        "(oracle AUC - model AUC), the oracle scoring with the true probabilities. Violation "
        "rate: share of test rows where some step's predicted probability exceeds the one "
        "before. train s: wall time of the fit (validation passes included). rows/s: neural "
        "models, training rows per second of the epoch loops; LightGBM, training rows / fit "
        "time over all tasks.",
    ]
    return "\n".join(lines) + "\n"


def plot_auc(summary: dict, tasks: tuple[str, ...], oracle: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(9, 1.6 * len(tasks) + 0.4 * len(names) + 2.5), 5))
    positions = np.arange(len(tasks))
    for i, name in enumerate(names):
        means = [summary[name]["auc"][t][0] for t in tasks]
        stds = [summary[name]["auc"][t][1] for t in tasks]
        ax.bar(positions + (i - (len(names) - 1) / 2) * width, means, width, yerr=stds, label=name)
    if oracle is not None:
        for j, t in enumerate(tasks):
            ax.hlines(oracle[t], j - 0.45, j + 0.45, colors="black", linestyles="dashed")
        ax.plot([], [], "k--", label="oracle")
    finite = [v for s in summary.values() for t in tasks if np.isfinite(v := s["auc"][t][0])]
    low = min(finite, default=0.5)
    ax.set_ylim(max(0.0, low - 0.03), 1.0)
    ax.set_xticks(positions, tasks)
    ax.set_ylabel("test AUC")
    ax.set_title("AUC per task")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # clear of the bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finished_runs(runs_log: Path, source: str) -> dict[tuple[str, int], Run]:
    """Runs already written to this folder's log for the same data: a long comparison resumes."""
    if not runs_log.exists():
        return {}
    finished = {}
    for line in runs_log.read_text().splitlines():
        record = json.loads(line)
        if record.pop("data") == source:
            run = Run(**record)
            finished[run.model, run.seed] = run
    return finished


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison; return the path of the Markdown table."""
    args = parse_args(argv)
    recording = Recording("compare", args.json)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args)
    oracle = None
    if splits.test.true_p is not None:
        oracle = evaluate(splits.tasks, splits.test.y, splits.test.true_p).auc
    print(
        f"data: {splits.source}: {len(splits.train):,} train, {len(splits.val):,} val, "
        f"{len(splits.test):,} test rows; tasks {list(splits.tasks)}; {threads} threads",
        file=sys.stderr,
    )
    runs_log = args.out / "runs.jsonl"
    runs: list[Run] = []
    for name in args.models:
        for seed in range(args.seeds):
            finished = _finished_runs(runs_log, splits.source)  # read again: runs may share it
            if (name, seed) in finished:
                runs.append(finished[name, seed])
                print(f"{name} seed {seed}: reused from {runs_log}", file=sys.stderr)
                continue
            if name == "lightgbm":
                run = run_lightgbm(splits, seed, threads)
            else:
                run = run_neural(splits, name, seed)
            runs.append(run)
            with runs_log.open("a") as log:
                log.write(json.dumps({"data": splits.source, **asdict(run)}) + "\n")
            aucs = " ".join(f"{t}={a:.4f}" for t, a in run.auc.items())
            print(
                f"{name} seed {seed}: {aucs} violations={run.violation_rate:.4f} "
                f"{run.train_seconds:.0f}s {run.best}",
                file=sys.stderr,
            )
    summary = summarise(runs, splits.tasks, oracle)
    header = (
        f"# Model comparison\n\ndata: {splits.source} ({len(splits.train):,} train / "
        f"{len(splits.val):,} val / {len(splits.test):,} test rows), {args.seeds} seed(s), "
        f"{threads} CPU threads, torch {torch.__version__}"
    )
    table = markdown_table(summary, splits.tasks, oracle, header)
    lightgbm_runs = [r for r in runs if r.model == "lightgbm"]
    if lightgbm_runs:
        table += f"\nLightGBM settings: `{json.dumps(lightgbm_runs[0].settings)}`\n"
    table_path = args.out / "compare.md"
    table_path.write_text(table)
    (args.out / "compare.json").write_text(
        json.dumps(
            {
                "data": splits.source,
                "tasks": list(splits.tasks),
                "oracle_auc": oracle,
                "config": splits.config.model_dump(mode="json"),
                "runs": [asdict(r) for r in runs],
            },
            indent=2,
        )
    )
    plot_auc(summary, splits.tasks, oracle, args.out / "compare_auc.png")
    print(table)
    recording.write(record_figures(splits, args.seeds, threads, summary, oracle))
    return table_path


def record_figures(
    splits: Splits, seeds: int, threads: int, summary: dict, oracle: dict[str, float] | None
) -> dict:
    """The summary as record figures: one row per model (means over seeds), then the oracle."""
    models = {}
    for name, row in summary.items():
        models[name] = {f"auc_{t}": round(row["auc"][t][0], 4) for t in splits.tasks}
        if row["gap_to_oracle"] is not None:
            models[name]["gap_to_oracle"] = round(row["gap_to_oracle"][0], 4)
        models[name] |= {
            "violation_rate": round(row["violation_rate"][0], 4),
            "train_s": round(row["train_seconds"][0]),
            "rows_per_s": round(row["rows_per_second"][0]),
            "seeds": row["seeds"],
        }
    if oracle is not None:
        models["oracle (true p)"] = {f"auc_{t}": round(oracle[t], 4) for t in splits.tasks}
    return {
        "data": splits.source,
        "train_rows": len(splits.train),
        "val_rows": len(splits.val),
        "test_rows": len(splits.test),
        "seeds": seeds,
        "threads": threads,
        "models": models,
    }


if __name__ == "__main__":
    main()
