"""Time to the first answer (issue 19 item 4): `skysift query DB "text"` as one process and the
REPL's first question, this build against a baseline build, interleaved in one run; and the open
time of a large collection.

    python3 benches/first_query.py --baseline PATH/TO/OLD/skysift [--rounds 10] [--ann-db DB]

The baseline is a release build of an earlier commit, for example:

    git worktree add target/first-query-base COMMIT
    (cd target/first-query-base && cargo build --release --bin skysift)
    python3 benches/first_query.py --baseline target/first-query-base/target/release/skysift

What it does (Python's standard library only; needs `cargo build --release --bin skysift`, the
demo model and ONNX Runtime: `scripts/setup_models.sh`):

  sample     imports the repository's samples/aid-mini (300 scenes) with this build into a
             temporary database (both builds read the same database)
  one-shot   `skysift query DB "<question>" -k 5 --device cpu`: wall clock from the process start
             to the first result row on its standard output, and to its exit
  repl       `skysift repl DB --device cpu` with the question and `\\q` on its standard input:
             time to the first result row (the REPL's banner, the encoder's load, the question)
  open       with --ann-db (a collection named `ann` of vectors, e.g. the 1M database of the
             README's ANN section): `skysift search DB ann --queries Q -k 10 --ef 64`, its
             reported open_ms (warm: the database's pages in the page cache)

A third variant, `unkept`, runs this build with SKYSIFT_ORT_CACHE=0: no optimised graphs kept
across processes (what the first process after an install or a model change pays, less writing
them). Each round runs every variant once, in alternating order (A B, then B A); the table gives the
median and the best of the rounds, and the ratio of this build to the baseline on each. The first
run of this build after a change to the model files hashes them once (the digest cache); a
warm-up round that is not counted runs every variant first.
Nothing is compared with a stored figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "skysift"
QUESTIONS = ["a harbour with boats", "airport with many planes", "ein Wald mit vielen Bäumen",
             "a sandy beach", "farmland in rows"]
FIRST_ROW = re.compile(rb"^\s+1\s+-?[0-9.]+\s")


def first_row_time(cmd: list[str], stdin: bytes | None = None, env: dict | None = None) -> tuple[float, float]:
    """Seconds from the start of `cmd` to the first result row on its stdout, and to its exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if stdin is not None:
        p.stdin.write(stdin)
    p.stdin.close()
    first = None
    for line in p.stdout:
        if first is None and FIRST_ROW.match(line):
            first = time.perf_counter() - t0
    err = p.stderr.read()
    code = p.wait()
    total = time.perf_counter() - t0
    if code != 0 or first is None:
        sys.exit(f"{' '.join(cmd)} failed (exit {code}, result row seen: {first is not None}):\n{err.decode()}")
    return first, total


def open_ms(binary: str, db: str, queries: str) -> float:
    out = subprocess.run([binary, "search", db, "ann", "--queries", queries, "-k", "10", "--ef", "64", "--output", os.devnull],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"search failed on {db}: {out.stderr}")
    for line in reversed(out.stdout.splitlines() + out.stderr.splitlines()):
        m = re.search(r'"open_ms":\s*([0-9.]+)', line) or re.search(r"open_ms[=: ]+([0-9.]+)", line)
        if m:
            return float(m.group(1))
    sys.exit(f"no open_ms in the output of search on {db}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="the skysift binary of the commit to compare with")
    ap.add_argument("--new", default=str(BIN), help="this build's binary (default target/release/skysift)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--ann-db", help="a database with a collection `ann` for the open time (optional)")
    ap.add_argument("--queries", help="an .fbin of query vectors for --ann-db (default: its data's query.fbin)")
    ap.add_argument("--out", default=str(ROOT / "target" / "first-query.json"))
    a = ap.parse_args()
    for b in (a.baseline, a.new):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is not an executable skysift build (see --help for how to build a baseline)")
    work = Path(tempfile.mkdtemp(prefix="first-query-", dir=ROOT / "target"))
    try:
        db = str(work / "db")
        subprocess.run([a.new, "import", db, str(ROOT / "samples" / "aid-mini"), "--collection", "aid",
                        "--device", "cpu"], check=True, capture_output=True)
        builds = {"baseline": a.baseline, "new": a.new, "unkept": a.new}
        times: dict[str, list[float]] = {}
        # `unkept`: this build without the optimised graphs kept across processes, which is what
        # its first process after an install (or a model change) pays, less the writing.
        unkept_env = dict(os.environ, SKYSIFT_ORT_CACHE="0")

        def once(name: str, binary: str, q: str, record: bool) -> None:
            env = unkept_env if name == "unkept" else None
            f1, t1 = first_row_time([binary, "query", db, q, "-k", "5", "--device", "cpu"], env=env)
            f2, _ = first_row_time([binary, "repl", db, "--device", "cpu"], f"{q}\n\\q\n".encode(), env)
            if record:
                times.setdefault(f"{name} one-shot first row", []).append(f1)
                times.setdefault(f"{name} one-shot exit", []).append(t1)
                times.setdefault(f"{name} repl first row", []).append(f2)

        for name, binary in builds.items():
            once(name, binary, QUESTIONS[0], record=False)
        for r in range(a.rounds):
            order = list(builds.items()) if r % 2 == 0 else list(reversed(builds.items()))
            for name, binary in order:
                once(name, binary, QUESTIONS[r % len(QUESTIONS)], record=True)
            print(f"round {r + 1}/{a.rounds}", file=sys.stderr, flush=True)
        if a.ann_db:
            queries = a.queries or str(ROOT / "bench-data" / "medium" / "query.fbin")
            opens = {k: v for k, v in builds.items() if k != "unkept"}
            for name, binary in opens.items():
                open_ms(binary, a.ann_db, queries)
            for r in range(a.rounds):
                order = list(opens.items()) if r % 2 == 0 else list(reversed(opens.items()))
                for name, binary in order:
                    times.setdefault(f"{name} open ms", []).append(open_ms(binary, a.ann_db, queries) / 1e3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{a.rounds} interleaved rounds; baseline {a.baseline}, new {a.new}\n")
    print("`new, unkept`: this build with SKYSIFT_ORT_CACHE=0 (no optimised graphs kept across processes)\n")
    print("| measure | baseline median / best (ms) | new median / best (ms) | new / baseline (median) "
          "| new, unkept median (ms) | unkept / baseline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for what in ["one-shot first row", "one-shot exit", "repl first row", "open ms"]:
        base, new, unkept = times.get(f"baseline {what}"), times.get(f"new {what}"), times.get(f"unkept {what}")
        if not base or not new:
            continue
        bm, nm = statistics.median(base), statistics.median(new)
        summary[what] = {"baseline": base, "new": new, "ratio_median": nm / bm}
        label = "open time of --ann-db" if what == "open ms" else what
        tail = "| | |"
        if unkept:
            um = statistics.median(unkept)
            summary[what].update({"unkept": unkept, "unkept_ratio_median": um / bm})
            tail = f"| {1e3 * um:.0f} | {um / bm:.2f}x |"
        print(f"| {label} | {1e3 * bm:.0f} / {1e3 * min(base):.0f} | {1e3 * nm:.0f} / {1e3 * min(new):.0f} "
              f"| {nm / bm:.2f}x {tail}")
    Path(a.out).write_text(json.dumps(summary, indent=1))
    print(f"\nraw times: {a.out}")


if __name__ == "__main__":
    main()
