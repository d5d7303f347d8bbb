"""API fuzzing: schemathesis against the service's own OpenAPI document, on a real server.

Every check schemathesis has runs on every answer: no 5xx, the status documented, the body
matching the documented schema, valid requests accepted, invalid ones refused with a 4xx. The
document is the one the server serves, with one change for reach: the /rank request's entity
keys and the candidates' key (the served dataset spec's names; `user_id` and `ad_id` for the
default) are narrowed to exactly the ids that have online features (`_narrow`), so valid
requests reach the model instead of stopping at 404.
The CI test runs a short form; the long one:

    make serve &                                    # the model `make run` promoted
    python -m tests.reliability.api_fuzz --url http://127.0.0.1:3000 \
        --feast-repo artifacts/pipeline/feature_repo --examples 1000 --max-time 600 \
        [--model-dir $BENTOML_HOME/models/<name>/<version>]   # else the repo's spec
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aitm.dataset import DatasetSpec, load_spec

CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass
class FuzzResult:
    exit_code: int
    requests: int
    statuses: dict[str, int]  # "POST /rank 404" -> count
    output: str  # schemathesis' report, failures included
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.rsplit(" ", 1)[1].startswith("5"))


def _plain(values: Sequence) -> list:
    return [v.item() if hasattr(v, "item") else v for v in values]


def known_ids(feast_repo: Path, spec: DatasetSpec) -> tuple[dict[str, list[Any]], list[Any]]:
    """Every id that has online features: each request entity's key -> ids, and the candidate
    entity's ids."""
    from features.build import entity_ids

    ids = entity_ids(feast_repo, spec)
    keys = {e.key: _plain(ids[name]) for name, e in spec.request_entities.items()}
    return keys, _plain(ids[spec.candidate])


def _request_ids(
    spec: DatasetSpec, request_ids: Mapping[str, list[Any]] | list[Any]
) -> dict[str, list[Any]]:
    """A list stands for the ids of the spec's one request entity."""
    if isinstance(request_ids, Mapping):
        return dict(request_ids)
    keys = [e.key for e in spec.request_entities.values()]
    if len(keys) != 1:
        raise ValueError(f"dataset {spec.name!r} has request keys {keys}: pass ids per key")
    return {keys[0]: list(request_ids)}


def _narrow(schema: dict, ids: list[Any]) -> None:
    """Narrow an id property to exactly the ids with features: a contiguous integer range as
    minimum/maximum, anything else as an enum. Exactly: a known id left outside is answered 200,
    which schemathesis counts as a schema-violating request accepted. A range rather than an
    enum where it can: the coverage phase sends one body per enum value (2,000 users in the
    tests' store would use up the time limit on /rank alone)."""
    unique = sorted(set(ids))
    integers = all(isinstance(i, int) and not isinstance(i, bool) for i in unique)
    if integers and unique and unique[-1] - unique[0] + 1 == len(unique):
        schema.pop("enum", None)
        schema.update(minimum=unique[0], maximum=unique[-1])
    else:
        schema["enum"] = unique


def fuzz_document(
    url: str,
    request_ids: Mapping[str, list[Any]] | list[Any],
    candidate_ids: list[Any],
    spec: DatasetSpec | None = None,
) -> dict:
    """The served document, the /rank request keys and the candidates' key (`spec`'s names;
    None: the default spec) narrowed to the ids with features."""
    spec = spec or load_spec()
    doc = httpx.get(f"{url}/docs.json", timeout=30).raise_for_status().json()
    rank = doc["paths"]["/rank"]["post"]["requestBody"]["content"]["application/json"]
    for key, ids in _request_ids(spec, request_ids).items():
        _narrow(rank["schema"]["properties"][key], ids)
    candidate = doc["components"]["schemas"]["Candidate"]["properties"]
    _narrow(candidate[spec.candidate_entity.key], candidate_ids)
    return doc


def _statuses(ndjson: Path) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response") or {}
            counts[f"{recorder['label']} {response.get('status_code', 'none')}"] += 1
    return dict(sorted(counts.items()))


def run_fuzz(
    url: str,
    request_ids: Mapping[str, list[Any]] | list[Any],
    candidate_ids: list[Any],
    out_dir: Path,
    *,
    dataset: DatasetSpec | None = None,
    examples: int = 100,
    max_time_s: int = 60,
    seed: int = 1,
) -> FuzzResult:
    """Run schemathesis (all phases, all checks) against `url`; requests counted from its
    NDJSON event log. `dataset`: the served model's spec (None: the default); `request_ids`:
    its request keys' ids with features (a list for a spec with one request entity)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "openapi.json"
    spec.write_text(json.dumps(fuzz_document(url, request_ids, candidate_ids, dataset)))
    ndjson = out_dir / "events.ndjson"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", str(spec),
        "--url", url, "--checks", "all", "--max-examples", str(examples),
        "--max-time", str(max_time_s), "--seed", str(seed), "--generation-database", "none",
        "--report", "ndjson", "--report-ndjson-path", str(ndjson), "--no-color",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=max_time_s + 120, cwd=out_dir
    )
    statuses = _statuses(ndjson) if ndjson.exists() else {}
    output = done.stdout + done.stderr
    failures = [line.strip() for line in output.splitlines() if line.strip().startswith("- ST")]
    return FuzzResult(done.returncode, sum(statuses.values()), statuses, output, failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--feast-repo", type=Path, default=Path("artifacts/pipeline/feature_repo"))
    parser.add_argument("--model-dir", type=Path, help="the served model's folder (its spec)")
    parser.add_argument("--examples", type=int, default=1000, help="per operation and phase")
    parser.add_argument("--max-time", type=int, default=600, help="seconds, the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("artifacts/fuzz"))
    args = parser.parse_args(argv)
    if args.model_dir:
        from serving.spec import artifact_spec

        spec = artifact_spec(args.model_dir)
    else:
        from features.fields import repo_spec

        spec = repo_spec(args.feast_repo)
    keys, candidates = known_ids(args.feast_repo, spec)
    result = run_fuzz(
        args.url, keys, candidates, args.out.resolve(), dataset=spec,
        examples=args.examples, max_time_s=args.max_time, seed=args.seed,
    )  # fmt: skip
    print(result.output[-6000:])
    print(json.dumps({"requests": result.requests, "server_errors": result.server_errors,
                      "statuses": result.statuses}, indent=2))  # fmt: skip
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
