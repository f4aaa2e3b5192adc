"""Load on the HTTP service: N concurrent clients × M edits (prints numbers; not a test).

    python bench/service_load.py --workspace WS [--clients 8] [--edits 50] [--window 0.25]
                                 [--max-batch 32] [--conflict-share 0.25] [--no-baseline] [--json]

``WS`` is a workspace with a trained default model (``oneedit demo`` makes one). Each run works on
a private copy and starts the real server (``oneedit serve --port 0``) on loopback in its own
process. Every client is an editor with its own token (editor rate limits are lifted in the copy);
it sends its edits one after another, each waiting until the edit is decided (server-sent events).
A share of the edits are *conflicting*: several clients set the same functional fact (e.g. one
country's capital) to different values, so the queue's arrival order decides; the rest are
independent counterfactual facts drawn from the KG.

Printed: p50/p99 latency from submit to "applied" (over the applied edits), edits per
second, the average MEMIT batch the worker achieved; then, after a graceful stop, checks on the
ledger (exactly N×M decided rows, none lost or duplicated, none left queued or pending) and on the
KG and the model (the model's greedy answer on every applied fact that still holds in the KG).
The baseline sends the same edits one at a time (one client, MEMIT batches of one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import import_lines  # noqa: E402  (bench/pipeline.py: counterfactual NL lines from the KG)


def edit_plan(root: Path, n_clients: int, per_client: int, conflict_share: float, seed: int) -> list[list[str]]:
    """Each client's list of requests (plain language)."""
    from editor.verbalize import Fact
    from oneedit.knowledge import Labeller, verbalizer
    from oneedit.system import OneEdit

    rng = random.Random(seed)
    total = n_clients * per_client
    n_conflict = int(total * conflict_share)
    with OneEdit.open(root, load_model=False) as oe:
        independent = import_lines(oe, total - n_conflict + 50, seed=seed)
        verb, label = verbalizer(oe.kg.schema), Labeller(oe.kg)
        countries = sorted(oe.kg.store.subjects("type", "Country"))[:200]
        cities = sorted({c for c in oe.kg.store.subjects("type", "City")})
        hot = rng.sample([c for c in countries if oe.kg.store.objects(c, "capital")], max(1, n_conflict // 4))
        conflicting = []
        for i in range(n_conflict):
            country = hot[i % len(hot)]  # each hot country is edited by ~4 different clients
            city = rng.choice(cities)
            p = verb.prompt(Fact(label(country), "capital", label(city), country, city), "train", 0)
            conflicting.append(p.text + p.target)
    # drop independent lines that touch a hot subject, then deal everything out round-robin
    pool = independent[: total - n_conflict]
    lines = pool + conflicting
    rng.shuffle(lines)
    return [lines[i::n_clients] for i in range(n_clients)]


def start_server(root: Path, window: float, max_batch: int) -> tuple[subprocess.Popen, str]:
    log = open(root.parent / f"{root.name}-server.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, "-m", "oneedit", "serve", "--port", "0", "--json", "-w", str(root),
                             "--batch-window", str(window), "--max-batch", str(max_batch), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    try:
        url = json.loads(line)["url"]
    except (ValueError, KeyError):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}; see {log.name}") from None
    from oneedit.client import Client

    with Client(url, "") as c:
        deadline = time.monotonic() + 600
        while c.health()["model"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.2)
    return proc, url


def stop_server(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    return json.loads(last)


def make_users(root: Path, n: int) -> list[str]:
    import yaml

    from controller.users import UserStore

    cfg = root / "config.yaml"
    raw = yaml.safe_load(cfg.read_text())
    raw.setdefault("policy", {})["rate_limit"] = {"editor": 0}  # the bench measures the queue, not the limiter
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    with UserStore(root / "ledger.sqlite") as us:
        return [us.add(f"client{i}", "editor")[1] for i in range(n)]


def run_clients(url: str, tokens: list[str], plan: list[list[str]], tag: str) -> dict:
    from oneedit.client import ApiError, Client

    latencies: list[float] = []
    applied_latencies: list[float] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with Client(url, tokens[i], timeout=600) as c:
            for n, text in enumerate(plan[i]):
                t0 = time.perf_counter()
                try:
                    row = c.edit(text, request_key=f"{tag}-{i}-{n}", wait=True, timeout=600)
                    status = row["status"]
                except ApiError as exc:
                    status = f"http {exc.status}"
                    with lock:
                        errors.append(f"{text!r}: {exc.message}")
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if status == "applied":
                        applied_latencies.append(dt)
                    outcomes[status] = outcomes.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(plan))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    with Client(url, tokens[0]) as c:
        stats = c.stats()
    q = statistics.quantiles(applied_latencies, n=100)
    refused = sum(n for k, n in outcomes.items() if k.startswith("http 4"))
    return {"edits": len(latencies), "seconds": round(wall, 1), "edits_per_second": round(len(latencies) / wall, 2),
            "applied_per_second": round(len(applied_latencies) / wall, 2),
            "p50_s": round(statistics.median(applied_latencies), 3), "p99_s": round(q[98], 3),
            "outcomes": outcomes, "refused_at_submit": refused, "worker": stats["worker"], "errors": errors[:20],
            "http_errors": len(errors)}


def check(root: Path, expected: int, tag: str, refused: int) -> dict:
    """The ledger holds exactly one decided row per request; the model says what the KG says."""
    from oneedit.core import Triple
    from oneedit.knowledge import holds
    from oneedit.system import OneEdit

    with OneEdit.open(root) as oe:
        rows = [e for e in oe.ledger.list(limit=None) if (e.request_key or "").split(":", 1)[-1].startswith(tag)]
        keys = [e.request_key for e in rows]
        statuses: dict[str, int] = {}
        for e in rows:
            statuses[e.status] = statuses.get(e.status, 0) + 1
        facts = {}
        for e in rows:
            if e.status == "applied":
                for f in (e.record.model_edit.written if e.record.model_edit else ()):
                    t = Triple(*f)
                    if holds(oe.kg, t):
                        facts[(t.subject, t.relation)] = t
        probes = [(split, p, t) for split, p, t in oe.sync.probe_prompts(list(facts.values())) if split == "train"]
        said = oe.sync.answers(probes)
        agree = sum(a.casefold().startswith(p.target.strip().casefold()) for (_, p, _), a in zip(probes, said, strict=True))
        # at edit time: the model's answer right after its batch, on the training prompt of each fact
        at_edit = [a["ok"] for e in rows if e.status == "applied"
                   for a in (e.record.model_edit.answers if e.record.model_edit else ()) if a["split"] == "train"]
        conflicted = sum(1 for e in rows if e.record.plan is not None and e.record.plan.conflicts)
        return {"rows": len(rows), "expected": expected, "refused_at_submit": refused,
                "distinct_requests": len(set(keys)), "lost": expected - refused - len(set(keys)),
                "duplicated": len(keys) - len(set(keys)), "with_conflicts": conflicted,
                "undecided": statuses.get("queued", 0) + statuses.get("pending", 0), "statuses": statuses,
                "model_right_at_edit_time": f"{sum(at_edit)}/{len(at_edit)}",
                "model_agrees_with_kg_at_end": f"{agree}/{len(probes)}"}


def one_run(src: Path, tmp: Path, name: str, plan: list[list[str]], window: float, max_batch: int) -> dict:
    root = tmp / name
    shutil.copytree(src, root)
    tokens = make_users(root, len(plan))
    proc, url = start_server(root, window, max_batch)
    try:
        res = run_clients(url, tokens, plan, name)
    finally:
        res_stop = stop_server(proc)
    res["server_stopped"] = res_stop
    res["check"] = check(root, sum(len(p) for p in plan), name, res["refused_at_submit"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default=os.environ.get("ONEEDIT_HOME", ".oneedit"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--edits", type=int, default=50, help="edits per client")
    ap.add_argument("--window", type=float, default=0.25)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--conflict-share", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    src = Path(args.workspace)
    if not (src / "model" / "base").is_dir():
        raise SystemExit(f"{src} has no trained default model: run `oneedit demo` (or `oneedit model train`) first.")
    plan = edit_plan(src, args.clients, args.edits, args.conflict_share, args.seed)
    results = {"clients": args.clients, "edits_per_client": args.edits, "window_s": args.window,
               "max_batch": args.max_batch}
    with tempfile.TemporaryDirectory() as tmp:
        results["coalesced"] = one_run(src, Path(tmp), "coalesced", plan, args.window, args.max_batch)
        if not args.no_baseline:
            serial = [[line for i in range(max(map(len, plan))) for p in plan if i < len(p) for line in [p[i]]]]
            results["one_at_a_time"] = one_run(src, Path(tmp), "serial", serial, 0.0, 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("coalesced", "one_at_a_time"):
        r = results.get(name)
        if not r:
            continue
        w, ck = r["worker"], r["check"]
        print(f"{name}: {r['edits']} edits in {r['seconds']} s = {r['edits_per_second']} edits/s; latency to decision "
              f"p50 {r['p50_s']} s, p99 {r['p99_s']} s; MEMIT batches {w['memit_batches']} (avg size "
              f"{w['avg_batch_size']}, max {w['max_batch_size']}); outcomes {r['outcomes']}")
        print(f"   ledger: {ck['rows']} rows + {ck['refused_at_submit']} refused at submit (4xx) for {ck['expected']} "
              f"requests: lost {ck['lost']}, duplicated {ck['duplicated']}, undecided {ck['undecided']}; "
              f"{ck['with_conflicts']} planned with conflicts")
        print(f"   model: right at edit time on {ck['model_right_at_edit_time']} trained prompts; agrees with the KG "
              f"at the end on {ck['model_agrees_with_kg_at_end']} applied facts still in the KG")
    if "one_at_a_time" in results:
        a, b = results["coalesced"], results["one_at_a_time"]
        print(f"coalesced vs one at a time: {a['edits_per_second'] / b['edits_per_second']:.2f}x edits/s, "
              f"p50 latency {a['p50_s'] / b['p50_s']:.2f}x")


if __name__ == "__main__":
    main()
