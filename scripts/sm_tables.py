#!/usr/bin/env python3
"""Markdown tables of the SequenceMatch arithmetic sweep
(experiments/sequencematch_arithmetic.toml) from its results/<name>/summary.csv:

- exact match on test and long after stage 2, mean ± sd over seeds, per
  objective (rows) and noise kind (columns);
- `<bksp>` per answer and fix rate per cell;
- every objective paired against MLE (same seed, same stage-1 weights, same
  noise): mean difference and range, on test and long;
- the stage-1 (MLE warm-up) model per seed.

usage: scripts/sm_tables.py results/sequencematch_arithmetic/summary.csv
(a sweep without a noise axis gets one column, `fixed`)
Only the standard library; every number comes from summary.csv.
"""
import argparse
import csv
import statistics
from collections import defaultdict

from summary_stats import ms, num

OBJ = "axis:stages.1.objective"
NOISE = "axis:stages.1.data.noise.kind"
NOISES = ["none", "random", "ground_truth"]


def short(obj):
    return obj.replace("sequencematch-", "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("summary")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.summary)))
    global NOISES
    if NOISE not in rows[0]:
        # a sweep with one noise kind, not swept
        for r in rows:
            r[NOISE] = "fixed"
        NOISES = ["fixed"]
    NOISES = [n for n in NOISES if any(r[NOISE] == n for r in rows)]
    objectives = list(dict.fromkeys(r[OBJ] for r in rows))
    seeds = sorted({r["seed"] for r in rows}, key=int)
    cell = defaultdict(list)
    for r in rows:
        cell[(r[OBJ], r[NOISE])].append(r)
    stage1 = next(c.split(":")[1] for c in rows[0] if c.startswith("after:"))

    print(f"runs: {len(rows)}, seeds: {', '.join(seeds)}; mean ± sample sd over seeds\n")
    for split in ["test", "long"]:
        print(f"**{split} exact match (%)** after stage 2\n")
        print("| objective | " + " | ".join(f"noise {n}" for n in NOISES) + " |")
        print("|---" * (len(NOISES) + 1) + "|")
        for o in objectives:
            cells = [ms([num(r, f"final:{split}") for r in cell[(o, n)]]) for n in NOISES]
            print(f"| {short(o)} | " + " | ".join(cells) + " |")
        print()

    for split in ["test", "long"]:
        print(f"**`<bksp>` per {split} answer / fix rate on {split}** (fix rate: mean over runs that deleted anything, run count in brackets)\n")
        print("| objective | " + " | ".join(f"{n}: bksp | {n}: fix" for n in NOISES) + " |")
        print("|---" * (2 * len(NOISES) + 1) + "|")
        for o in objectives:
            out = []
            for n in NOISES:
                rs = cell[(o, n)]
                out.append(ms([num(r, f"backspaces:{split}") for r in rs], scale=1.0, digits=2))
                fix = [num(r, f"fix_rate:{split}") for r in rs]
                fix = [f for f in fix if f is not None]
                out.append(f"{statistics.mean(fix):.2f} ({len(fix)})" if fix else "–")
            print(f"| {short(o)} | " + " | ".join(out) + " |")
        print()

    mle = {(r[NOISE], r["seed"]): r for r in rows if r[OBJ] == "mle"}
    for split in ["test", "long"]:
        print(f"**Paired against MLE on {split}** (same seed, warm-up and noise; points; {len(NOISES)} noise kind(s) x {len(seeds)} seeds per row; the last columns: mean difference per noise kind)\n")
        print("| objective | mean difference | range | better than MLE | " + " | ".join(NOISES) + " |")
        print("|---" * (4 + len(NOISES)) + "|")
        diffs = {}
        per_noise = defaultdict(list)
        for o in objectives:
            if o == "mle":
                continue
            d = []
            for r in rows:
                if r[OBJ] != o:
                    continue
                base = mle.get((r[NOISE], r["seed"]))
                if base is None:
                    continue
                x = 100 * (num(r, f"final:{split}") - num(base, f"final:{split}"))
                d.append(x)
                per_noise[(o, r[NOISE])].append(x)
            if d:
                diffs[o] = d
        for o, d in sorted(diffs.items(), key=lambda kv: -statistics.mean(kv[1])):
            wins = sum(x > 0 for x in d)
            cols = [f"{statistics.mean(per_noise[(o, n)]):+.1f}" if per_noise[(o, n)] else "–" for n in NOISES]
            print(f"| {short(o)} | {statistics.mean(d):+.1f} | {min(d):+.1f} .. {max(d):+.1f} | {wins} of {len(d)} | " + " | ".join(cols) + " |")
        print()

    print(f"**After stage 1 ({stage1})**, per seed:\n")
    print("| seed | test | long |")
    print("|---|---|---|")
    for s in seeds:
        r = next(r for r in rows if r["seed"] == s)
        t, l = num(r, f"after:{stage1}:test"), num(r, f"after:{stage1}:long")
        print(f"| {s} | {100 * t:.1f} | {100 * l:.1f} |")


if __name__ == "__main__":
    main()
