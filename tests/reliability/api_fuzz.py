"""API fuzzing: schemathesis against the service's own OpenAPI document, on a real server.

Every check schemathesis has runs on every answer: no 5xx, the status documented, the body
matching the documented schema, valid requests accepted, invalid ones refused with a 4xx. The
document is the one the server serves, with one change for reach: `user_id` and `ad_id` are
narrowed to ids that have online features, so valid requests reach the model instead of
stopping at 404 (invalid ones still send any id). The CI test runs a short form; the long one:

    make serve &                                    # the model `make run` promoted
    python -m tests.reliability.api_fuzz --url http://127.0.0.1:3000 \
        --feast-repo artifacts/pipeline/feature_repo --examples 1000 --max-time 600
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

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


def known_ids(feast_repo: Path, n: int = 20) -> tuple[list[int], list[int]]:
    """Some users and ads that have online features: the first of the Feast sources."""
    from features.build import source_ids

    users, ads = source_ids(feast_repo)
    return [int(u) for u in users[:n]], [int(a) for a in ads[:n]]


def fuzz_document(url: str, users: list[int], ads: list[int]) -> dict:
    """The served document, `user_id` and `ad_id` narrowed to ids with features."""
    doc = httpx.get(f"{url}/docs.json", timeout=30).raise_for_status().json()
    rank = doc["paths"]["/rank"]["post"]["requestBody"]["content"]["application/json"]
    rank["schema"]["properties"]["user_id"]["enum"] = users
    doc["components"]["schemas"]["Candidate"]["properties"]["ad_id"]["enum"] = ads
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
    users: list[int],
    ads: list[int],
    out_dir: Path,
    *,
    examples: int = 100,
    max_time_s: int = 60,
    seed: int = 1,
) -> FuzzResult:
    """Run schemathesis (all phases, all checks) against `url`; requests counted from its
    NDJSON event log."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "openapi.json"
    spec.write_text(json.dumps(fuzz_document(url, users, ads)))
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
    parser.add_argument("--examples", type=int, default=1000, help="per operation and phase")
    parser.add_argument("--max-time", type=int, default=600, help="seconds, the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("artifacts/fuzz"))
    args = parser.parse_args(argv)
    users, ads = known_ids(args.feast_repo)
    result = run_fuzz(
        args.url, users, ads, args.out.resolve(),
        examples=args.examples, max_time_s=args.max_time, seed=args.seed,
    )  # fmt: skip
    print(result.output[-6000:])
    print(json.dumps({"requests": result.requests, "server_errors": result.server_errors,
                      "statuses": result.statuses}, indent=2))  # fmt: skip
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
