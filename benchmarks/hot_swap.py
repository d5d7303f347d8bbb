"""Hot swap benchmark: how long a promote and a rollback take to reach a running service, and
whether any request fails meanwhile.

    # a server following the pointer (AITM_MODEL_TAG unset), its registry home and Feast repo:
    python -m benchmarks.hot_swap --url http://127.0.0.1:3000 --home $BENTOML_HOME \
        --feast-repo feature_repo

Client threads send /predict (5 rows) and /rank (20 candidates) in turn, without pause; the
promoted model's folder is registered again as a new version and promoted, and once answers
carry it, `python -m registry rollback` points back. The swap time is from the pointer's
replacement (its mtime) to the first request sent after it that the new model answered: poll
wait, load, checks and swap. It prints the figures and writes them as a record
(benchmarks/record.py; `--json PATH`). tests/integration/test_hot_swap.py uses the same parts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.record import ROOT, Recording, add_json_argument
from registry.store import pointer_path, promoted

VERSION_HEADER = "x-model-version"

# Register (and promote) a model folder again in HOME: a new version of the same model.
# bentoml fixes its store at import, hence a subprocess.
REGISTER = """
import json, sys
from registry.store import promote, register
home, artifact, do_promote = sys.argv[1], sys.argv[2], sys.argv[3] == "promote"
tag, path = register(artifact, home, labels={}, metadata={})
if do_promote:
    promote(home, tag, path, {})
print(json.dumps({"tag": tag, "path": str(path)}))
"""


def _run(cmd: list[str], env: dict[str, str] | None, what: str) -> str:
    done = subprocess.run(
        cmd, env=env or dict(os.environ), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout}{done.stderr[-4000:]}")
    return done.stdout.strip()


def register_version(
    home: Path, artifact: Path, promote: bool, env: dict[str, str] | None = None
) -> tuple[str, Path]:
    """(tag, stored path) of the model folder registered again under `home`, promoted if
    asked."""
    cmd = [sys.executable, "-c", REGISTER, str(home), str(artifact),
           "promote" if promote else "register"]  # fmt: skip
    info = json.loads(_run(cmd, env, f"registering {artifact}").splitlines()[-1])
    return info["tag"], Path(info["path"])


def rollback(home: Path, env: dict[str, str] | None = None) -> str:
    """`python -m registry rollback` on `home`; what it printed."""
    cmd = [sys.executable, "-m", "registry", "rollback", "--home", str(home)]
    return _run(cmd, env, "python -m registry rollback")


def pointer_moved_at(home: Path) -> float:
    """When the pointer file was last replaced (the time.time() clock)."""
    return pointer_path(home).stat().st_mtime


@dataclass(frozen=True)
class Answer:
    sent: float  # time.time() when the request was sent
    route: str
    status: int  # 0: no answer (connection error)
    version: str | None  # the version header, None if absent


@dataclass
class Load:
    """`threads` clients sending /predict and /rank in turn until `stop()` (or `max_s`)."""

    url: str
    predict: dict
    rank: dict
    threads: int = 3
    max_s: float = 120.0
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._client, daemon=True) for _ in range(self.threads)
        ]

    def _client(self) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                route, body = ("/predict", self.predict) if i % 2 == 0 else ("/rank", self.rank)
                i += 1
                sent = time.time()
                try:
                    response = client.post(route, json=body)
                    answer = Answer(
                        sent, route, response.status_code, response.headers.get(VERSION_HEADER)
                    )
                except httpx.TransportError:
                    answer = Answer(sent, route, 0, None)
                with self._lock:
                    self.answers.append(answer)

    def start(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return self.snapshot()

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait_for_version(self, tag: str, since: float, timeout_s: float) -> float | None:
        """Seconds from `since` to the first request sent after it that `tag` answered; None if
        none did within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = [a.sent for a in self.snapshot() if a.version == tag and a.sent >= since]
            if hits:
                return min(hits) - since
            time.sleep(0.05)
        return None


def request_bodies(model_dir: Path, repo: Path) -> tuple[dict, dict]:
    """A /predict body (5 rows) and a /rank body (20 candidates) in the model's spec's names."""
    from aitm.inference import Predictor
    from benchmarks.serving_bench import context_rows, rank_body_maker, request_frame
    from features.build import entity_ids
    from serving.spec import served_spec

    predictor = Predictor.load(model_dir)
    spec = served_spec(predictor.schema, str(model_dir))
    rows = json.loads(request_frame(repo, spec, 5).to_json(orient="records"))
    tasks = list(predictor.tasks)
    rank = rank_body_maker(spec, entity_ids(repo, spec), context_rows(repo, spec), tasks, 20)
    return {"rows": rows}, rank(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--home", type=Path, required=True, help="the server's registry home")
    parser.add_argument("--feast-repo", type=Path, required=True, help="the served Feast repo")
    parser.add_argument("--threads", type=int, default=3, help="client threads")
    parser.add_argument("--bound", type=float, default=60.0, help="seconds to wait for a swap")
    add_json_argument(parser, "hot_swap")
    args = parser.parse_args()
    recording = Recording("hot_swap", args.json)

    current = promoted(args.home)
    if current is None:
        raise SystemExit(f"nothing is promoted under {args.home}")
    load = Load(args.url, *request_bodies(current.path, args.feast_repo), threads=args.threads)
    with httpx.Client(base_url=args.url, timeout=30) as client:
        old = client.post("/predict", json=load.predict).headers.get(VERSION_HEADER)
    if old != current.tag:
        raise SystemExit(f"the server answers with {old}, the pointer names {current.tag}")
    load.max_s = 4 * args.bound + 30
    load.start()
    time.sleep(2.0)
    new, _ = register_version(args.home, current.path, promote=True)
    promoted_at = pointer_moved_at(args.home)
    to_new = load.wait_for_version(new, promoted_at, args.bound)
    time.sleep(2.0)
    rollback(args.home)
    rolled_at = pointer_moved_at(args.home)
    to_old = load.wait_for_version(old, rolled_at, args.bound)
    time.sleep(2.0)
    answers = load.stop()

    def during(since: float, seconds: float | None) -> int:
        end = since + (seconds if seconds is not None else args.bound)
        return sum(1 for a in answers if since <= a.sent < end)

    figures = {
        "threads": args.threads,
        "old": old,
        "new": new,
        "swap_s": to_new,
        "rollback_s": to_old,
        "answers": len(answers),
        "answers_during_swap": during(promoted_at, to_new),
        "answers_during_rollback": during(rolled_at, to_old),
        "errors": sum(1 for a in answers if a.status != 200),
        "without_version": sum(1 for a in answers if a.version is None),
        "seconds": max(a.sent for a in answers) - min(a.sent for a in answers),
    }
    print(json.dumps(figures, indent=2))
    recording.write(figures)


if __name__ == "__main__":
    main()
