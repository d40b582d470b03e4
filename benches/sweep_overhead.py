#!/usr/bin/env python3
"""The sweep machinery's cost on this machine (issue 13), three numbers:

1. Overhead per run: a sweep of N tiny runs (`--jobs 1`) against the sum of
   the runs' own training times (summary.json `train_s` of each stage, i.e.
   optimiser steps only). What is left -- process start, config expansion,
   data generation, model building, evaluation probes, checkpoints,
   metrics, summary.csv and plots -- is the machinery plus evaluation; the
   script prints it per run, and as a share of a realistic run (the
   quickstart's training time, measured here with one run of
   experiments/quickstart.toml unless --realistic-s is given).
2. Shards: the same sweep's wall time as one process (`--jobs 1`) and as two
   shard processes at once (`--shard 0/2`, `--shard 1/2`, `--jobs 1` each),
   alternating, median of --pairs pairs; ratio 1-shard / 2-shard.
3. Grid expansion: `rewind run --dry-run` of a 10^6-point grid (wall time
   and peak memory from /usr/bin/time if present).

Usage: cargo build --release && python3 benches/sweep_overhead.py
    [--rewind target/release/rewind] [--runs 100] [--pairs 3]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

TINY = """
[experiment]
name = "overhead"
kind = "arithmetic"
seeds = [{seeds}]

[model]
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
max_len = 24

[data]
digits = [1, 2]
long_digits = [3, 3]
val_size = 50
test_size = 50
long_size = 50

[[stages]]
name = "train"
objective = {{ kind = "mle" }}
steps = {steps}
batch_size = 16
eval_every = 0
checkpoint_every = 0

[eval]
batch_size = 50
val_during_training = 50
"""

HUGE_SWEEP = """
[sweep]
"stages.0.lr" = [{lrs}]
"stages.0.batch_size" = [{batches}]
"stages.0.grad_clip" = [{clips}]
"""


def run(cmd, **kw):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def train_seconds(root, name):
    total, runs = 0.0, 0
    for d in os.listdir(os.path.join(root, name)):
        p = os.path.join(root, name, d, "summary.json")
        if os.path.exists(p):
            s = json.load(open(p))
            total += sum(st.get("train_s", 0.0) for st in s.get("stages", []))
            runs += 1
    return total, runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rewind", default="target/release/rewind")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--realistic-s", type=float, default=None,
                    help="training seconds of a realistic run (default: measure the quickstart)")
    a = ap.parse_args()
    rw = os.path.abspath(a.rewind)
    tmp = tempfile.mkdtemp(prefix="sweep-bench-")
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    try:
        cfg = os.path.join(tmp, "tiny.toml")
        with open(cfg, "w") as f:
            f.write(TINY.format(seeds=", ".join(map(str, range(a.runs))), steps=a.steps))

        # 1. overhead per run
        root = os.path.join(tmp, "r1")
        wall = run([rw, "run", cfg, "--jobs", "1", "-q", "--results", root], env=env)
        train, n = train_seconds(root, "overhead")
        assert n == a.runs, f"{n} of {a.runs} runs finished"
        per_run = (wall - train) / n
        print(f"1. {n} tiny runs ({a.steps} steps each), --jobs 1: wall {wall:.2f} s, "
              f"training {train:.2f} s, rest {wall - train:.2f} s = {per_run * 1e3:.1f} ms per run")
        realistic = a.realistic_s
        if realistic is None:
            qroot = os.path.join(tmp, "q")
            run([rw, "run", "experiments/quickstart.toml", "-q", "--results", qroot])
            realistic, _ = train_seconds(qroot, "quickstart")
            print(f"   quickstart run: {realistic:.1f} s of training")
        print(f"   per-run rest / realistic run's training: {100 * per_run / realistic:.2f}%")

        # 2. shards, alternating, median of pairs
        one, two = [], []
        for i in range(a.pairs):
            r = os.path.join(tmp, f"s1-{i}")
            one.append(run([rw, "run", cfg, "--jobs", "1", "-q", "--results", r], env=env))
            r = os.path.join(tmp, f"s2-{i}")
            t0 = time.perf_counter()
            ps = [subprocess.Popen([rw, "run", cfg, "--jobs", "1", "-q", "--shard", f"{k}/2",
                                    "--results", r], env=env, stdout=subprocess.DEVNULL)
                  for k in range(2)]
            assert all(p.wait() == 0 for p in ps)
            subprocess.run([rw, "merge", cfg, "--results", r], check=True, stdout=subprocess.DEVNULL)
            two.append(time.perf_counter() - t0)
        m1, m2 = statistics.median(one), statistics.median(two)
        print(f"2. {a.runs} runs: 1 shard {m1:.2f} s, 2 shards at once (+ merge) {m2:.2f} s "
              f"(median of {a.pairs} alternating pairs): ratio {m1 / m2:.2f}x on {os.cpu_count()} cores")

        # 3. a 10^6-point grid's dry run
        huge = os.path.join(tmp, "huge.toml")
        vals = ", ".join(str(i + 1) for i in range(100))
        with open(huge, "w") as f:
            f.write(TINY.format(seeds="0", steps=10)
                    + HUGE_SWEEP.format(lrs=", ".join(f"{(i + 1) * 1e-3:.5g}" for i in range(100)),
                                        batches=vals,
                                        clips=", ".join(f"{(i + 1) * 0.1:.5g}" for i in range(100))))
        cmd = [rw, "run", huge, "--dry-run", "--results", os.path.join(tmp, "h")]
        timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
        if timer:
            t0 = time.perf_counter()
            out = subprocess.run([timer, "-f", "%M", *cmd], check=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            secs = time.perf_counter() - t0
            kb = int(out.stderr.strip().splitlines()[-1])
            print(f"3. --dry-run of a 10^6-run grid: {secs:.3f} s, peak memory {kb / 1024:.0f} MiB")
        else:
            print(f"3. --dry-run of a 10^6-run grid: {run(cmd):.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
