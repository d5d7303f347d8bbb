"""Render the benchmark records into docs/benchmarks.md and the README's headline results.

    python -m benchmarks.report          # or: make docs, or python benchmarks/report.py

Reads every `benchmarks/results/*.json` (written by benchmarks/record.py), refuses a record that
lacks a key, and writes one section per benchmark: its figures, the command, the date, the
commit and the host probe. The README's block between the headline markers is rewritten from
the same records; nothing else in the README is touched. Same records, same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

# Standard library only, and no import of benchmarks.record, so it also runs as a plain script.
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # where benchmarks.record writes
DOCS = ROOT / "docs" / "benchmarks.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"

RECORD_KEYS = ("benchmark", "figures", "command", "date", "host", "git_commit", "git_dirty")
HOST_KEYS = (
    "cpu_count",
    "cpu_model",
    "load_average_start",
    "load_average_end",
    "probe_ms_start",
    "probe_ms_end",
)

# What each benchmark measures, and the command that gives its record at full size.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "compare": (
        "AITM, its ablations and the baselines trained on the same funnel: test AUC per task "
        "(mean over seeds), gap to the oracle, funnel violations, training time.",
        "python -m benchmarks.compare --rows 1000000 --seeds 3 --threads 1 "
        "--out artifacts/compare-1m",
    ),
    "features_bench": (
        "Feast: offline retrieval throughput (file store) and online lookup latency of one user "
        "and 50 ads on SQLite and Redis, for the serving path (`reader`) and Feast's "
        "`get_online_features`.",
        "python -m benchmarks.features_bench --rows 200000",
    ),
    "hot_swap": (
        "Continuous deployment under steady /predict and /rank load: seconds from a promote "
        "(and a rollback) moving the pointer to the first request the new model answered, "
        "requests answered meanwhile, errors.",
        "python -m benchmarks.hot_swap --url http://127.0.0.1:3000 --home artifacts/bentoml "
        "--feast-repo artifacts/pipeline/feature_repo",
    ),
    "monitoring_bench": (
        "The monitoring job on N logged predictions, all labelled: read, label join, the "
        "Evidently report with every test (`job_s`), and its peak memory.",
        "python -m benchmarks.monitoring_bench --rows 1000000",
    ),
    "serving_bench": (
        "Open-loop load against a running service (`make serve`): latency from the scheduled "
        "send time, throughput, errors, and the same model's in-process forward time.",
        "python -m benchmarks.serving_bench --url http://127.0.0.1:3000 --model-dir MODEL_DIR "
        "--feast-repo artifacts/pipeline/feature_repo --duration 20",
    ),
    "serving_forward": (
        "The served model's forward side by side (eager, `torch.export`, TorchScript trace) on "
        "/predict, /rank and the batcher's shapes, one torch thread: median and p99 per call, "
        "and each variant's largest difference from eager.",
        "python -m benchmarks.serving_forward",
    ),
    "simulate_memory": (
        "The funnel simulator: wall time, peak memory and Parquet size.",
        "python -m benchmarks.simulate_memory --rows 10000000",
    ),
    "soak": (
        "/rank and /predict together at fixed rates against `make serve`: errors, latency "
        "percentiles and the server's memory growth.",
        "make soak MINUTES=10",
    ),
    "train_throughput": (
        "AITM training: samples per second by epoch, validation AUC, peak memory.",
        "python -m benchmarks.train_throughput --rows 2000000 --epochs 2 --threads 2",
    ),
}


class RecordError(ValueError):
    """A benchmark record that cannot be rendered."""


def check(record: object, source: str) -> dict:
    """`record` itself if it has every key the page needs; else RecordError naming the key."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record is a JSON object, got {type(record).__name__}")
    for key in RECORD_KEYS:
        if key not in record:
            raise RecordError(f"{source}: the record has no {key!r} (expected {RECORD_KEYS})")
    if not isinstance(record["figures"], dict) or not record["figures"]:
        raise RecordError(f"{source}: 'figures' must be a non-empty object")
    for key in HOST_KEYS:
        if key not in record["host"]:
            raise RecordError(f"{source}: the record's host has no {key!r} (expected {HOST_KEYS})")
    return record


def load_records(folder: Path = RESULTS) -> list[dict]:
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}: not JSON ({exc})") from exc
        records.append(check(record, str(path)))
    return sorted(records, key=lambda r: r["benchmark"])


SLOWER_PROBE = 1.25  # a probe this much slower after the run than before: others were running


def quiet(host: dict) -> bool:
    """Quiet: the 1-minute load average at the start was at most half the CPU count, and the
    probe after the run (when the benchmark's own work is done) was not much slower than the
    one before. The load average at the end includes the benchmark's own work."""
    calm = host["load_average_start"][0] <= host["cpu_count"] / 2
    return calm and host["probe_ms_end"] <= SLOWER_PROBE * host["probe_ms_start"]


def fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or "none"
    return str(value).replace("|", "\\|")


def _is_table(value: object) -> bool:
    """A dict of dicts or a list of dicts: rendered as its own table."""
    rows = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return bool(rows) and all(isinstance(row, dict) for row in rows)


def _flat(row: dict, prefix: str = "") -> dict:
    """A row's nested objects as columns named `outer inner`."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key} ")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _table(name: str, value: dict | list) -> list[str]:
    rows = value.items() if isinstance(value, dict) else enumerate(value)
    rows = [(key, _flat(row)) for key, row in rows]
    columns = list(dict.fromkeys(k for _, row in rows for k in row))
    lines = [f"`{name}`:", "", "| " + " | ".join(["", *columns]) + " |"]
    lines.append("|" + "---|" * (len(columns) + 1))
    for key, row in rows:
        lines.append("| " + " | ".join([str(key), *(fmt(row.get(c)) for c in columns)]) + " |")
    return [*lines, ""]


def host_line(record: dict) -> str:
    host = record["host"]
    state = "quiet" if quiet(host) else "loaded"
    start, end = host["load_average_start"], host["load_average_end"]
    return (
        f"{state} host: {host['cpu_count']} CPUs ({host['cpu_model']}), 1-minute load average "
        f"{start[0]:.2f} at the start and {end[0]:.2f} at the end; probe "
        f"{fmt(host['probe_ms_start'])} ms before and {fmt(host['probe_ms_end'])} ms after"
    )


def commit_text(record: dict) -> str:
    commit = record["git_commit"]
    if commit is None:
        return "unknown (not a git checkout)"
    return f"`{commit[:10]}`" + (" with uncommitted changes" if record["git_dirty"] else "")


def section(record: dict) -> str:
    name = record["benchmark"]
    about = BENCHMARKS.get(name, ("", ""))[0]
    lines = [f"## {name}", ""]
    if about:
        lines += [about, ""]
    lines += [
        f"- command: `{record['command']}`",
        f"- date: {record['date']}",
        f"- commit: {commit_text(record)}",
        f"- {host_line(record)}",
        "",
    ]
    scalars = {k: v for k, v in record["figures"].items() if not _is_table(v)}
    if scalars:
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in scalars.items()]
        lines.append("")
    for key, value in record["figures"].items():
        if _is_table(value):
            lines += _table(key, value)
    return "\n".join(lines).rstrip() + "\n"


def page(records: list[dict]) -> str:
    missing = [name for name in BENCHMARKS if name not in {r["benchmark"] for r in records}]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make docs` (`python -m benchmarks.report`) from",
        "`benchmarks/results/*.json`; each benchmark writes its record there (`--json PATH`",
        "elsewhere). Do not edit by hand: rerun the command of a section, then `make docs`.",
        "",
        "The host probe times a fixed pure-Python loop (median of three) before and after the",
        "run, and the load average is read at both ends. A host is marked quiet when the",
        "1-minute load average at the start was at most half its CPU count and the probe after",
        f"the run took at most {SLOWER_PROBE:g} times the one before; figures from a loaded host",
        "(other jobs sharing the CPUs) are pessimistic, and the probe shows by how much the",
        "machine was slowed.",
        "",
    ]
    loaded = [r["benchmark"] for r in records if not quiet(r["host"])]
    if loaded:
        lines += [
            f"{len(loaded)} of {len(records)} records come from a loaded host (other jobs shared "
            f"its CPUs): {', '.join(f'`{name}`' for name in loaded)}. Read their times as "
            "pessimistic and rerun them on a quiet machine for a figure to quote.",
            "",
        ]
    if missing:
        lines += ["No record yet; the command that makes one (`serving_bench` and `soak` need"]
        lines += ["`make serve` with a promoted model, so `make run` first):"]
        lines.append("")
        lines += [f"- `{name}`: `{BENCHMARKS[name][1]}`" for name in missing]
        lines.append("")
    body = "\n".join(lines) + "\n" + "\n".join(section(r) for r in records)
    return body.rstrip() + "\n"


def _get(figures: dict, *path: str) -> object:
    value: object = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


# README headlines: (benchmark, what, figures -> text or None where the record lacks it).
Headline = tuple[str, str, Callable[[dict], str | None]]


def _throughput(f: dict) -> str | None:
    if f.get("samples_per_second") is None:
        return None
    return (
        f"{fmt(f['samples_per_second'])} samples/s on {fmt(f['train_rows'])} training rows, "
        f"{f['threads_per_process']} thread(s)"
    )


def _online(f: dict) -> str | None:
    p99 = {store: _get(f, "online", f"{store} reader", "p99_ms") for store in ("Redis", "SQLite")}
    parts = [f"{store} p99 {fmt(ms)} ms" for store, ms in p99.items() if ms is not None]
    if not parts:
        return None
    return "; ".join(parts) + f" (1 user + {f['ads']} ads, `OnlineFeatureReader`)"


def _offline(f: dict) -> str | None:
    if f.get("offline_retrieval_rows_per_s") is None:
        return None
    return f"{fmt(f['offline_retrieval_rows_per_s'])} rows/s on {fmt(f['rows'])} impressions"


def _simulation(f: dict) -> str | None:
    return f"{fmt(f['rows'])} rows in {fmt(f['seconds'])} s, peak RSS {fmt(f['peak_rss_mb'])} MB"


def _monitoring(f: dict) -> str | None:
    return (
        f"{fmt(f['rows'])} logged predictions in {fmt(f['job_s'])} s, "
        f"peak RSS {fmt(round(f['peak_rss_mb']))} MB"
    )


def _rank(f: dict) -> str | None:
    rank = f.get("rank 50 candidates")
    if rank is None:
        return None
    return (
        f"/rank 50 candidates at {fmt(rank['rate_req_s'])} req/s: p50 {fmt(rank['p50_ms'])} ms, "
        f"p99.9 {fmt(rank['p99_9_ms'])} ms"
    )


def _soak(f: dict) -> str | None:
    return (
        f"{fmt(f['requests'])} requests, errors {fmt(f['errors'])}, p99.9 "
        f"{fmt(f['p99_9_ms'])} ms, memory growth {fmt(f['memory_growth'])}"
    )


def _compare(f: dict) -> str | None:
    aitm = _get(f, "models", "aitm")
    if aitm is None:
        return None
    aucs = [f"{fmt(v)}" for k, v in aitm.items() if k.startswith("auc_")]
    return f"AITM test AUC by step {' / '.join(aucs)} on {fmt(f['train_rows'])} training rows"


def _forward(f: dict) -> str | None:
    rank = _get(f, "shapes", "rank 50 candidates")
    if not isinstance(rank, dict):
        return None
    medians = [
        f"{name} {fmt(v['median_ms'])} ms"
        for name, v in rank.items()
        if isinstance(v, dict) and "median_ms" in v
    ]
    return "50-row forward, median: " + ", ".join(medians) if medians else None


HEADLINES: tuple[Headline, ...] = (
    ("train_throughput", "training throughput", _throughput),
    ("simulate_memory", "simulation", _simulation),
    ("features_bench", "online feature lookup", _online),
    ("features_bench", "offline retrieval", _offline),
    ("serving_bench", "serving", _rank),
    ("serving_forward", "served forward", _forward),
    ("soak", "soak", _soak),
    ("monitoring_bench", "monitoring job", _monitoring),
    ("compare", "model comparison", _compare),
)


def headline_block(records: list[dict]) -> str:
    by_name = {r["benchmark"]: r for r in records}
    lines = ["| what | figure | host | date |", "|---|---|---|---|"]
    for name, what, render in HEADLINES:
        record = by_name.get(name)
        text = render(record["figures"]) if record else None
        if text is None:
            continue
        h = record["host"]
        host = (
            f"{'quiet' if quiet(h) else 'loaded'}: load {h['load_average_start'][0]:.2f} on "
            f"{h['cpu_count']} CPUs, probe {fmt(h['probe_ms_start'])} → {fmt(h['probe_ms_end'])} ms"
        )
        lines.append(f"| {what} | {text} | {host} | {record['date'][:10]} |")
    lines += [
        "",
        "Every figure, its command and host probe: [docs/benchmarks.md](docs/benchmarks.md).",
    ]
    return "\n".join(lines)


def fill_readme(text: str, block: str) -> str:
    """`text` with the lines between the headline markers replaced by `block`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise RecordError(f"the README needs one {BEGIN} line followed by one {END} line")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    records = load_records(args.results)
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(page(records))
    args.readme.write_text(fill_readme(args.readme.read_text(), headline_block(records)))
    print(f"{args.docs}: {len(records)} records; {args.readme}: headline results")


if __name__ == "__main__":
    main()
