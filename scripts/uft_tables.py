#!/usr/bin/env python3
"""Markdown tables of a learning-and-forgetting sweep (experiments/uft_countdown.toml)
from its results/<name>/summary.csv: mean ± sd over seeds per grid point (every
swept axis but the seed: objective and learning rate, or mixing ratio), of one-pass success (greedy, best-of-n), model-guided search
success (beam), forgetting (search success after stage 1 minus after stage 2),
and wall time per problem; plus the stage-1 model and the symbolic baselines.

usage: scripts/uft_tables.py results/uft_countdown/summary.csv [--split test]
Only the standard library; every number comes from summary.csv.
"""
import argparse
import csv
import os
import statistics
from collections import defaultdict

from summary_stats import ms, num


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("summary")
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.summary)))
    cols = rows[0].keys()
    stages = []
    for c in cols:
        if c.startswith("after:"):
            st = c.split(":")[1]
            if st not in stages:
                stages.append(st)
    first, last = stages[0], stages[-1]
    probes = [c[len("final:"):] for c in cols if c.startswith("final:") and c.startswith(f"final:{a.split}/")]
    greedy = next(p for p in probes if "/greedy/" in p)
    sample = next((p for p in probes if "/sample" in p), None)
    beam = next((p for p in probes if "/beam" in p), None)
    symbolic = [p for p in probes if "/search-" in p]
    axis_cols = [c for c in cols if c.startswith("axis:") and c != "axis:experiment.seed"]
    model_probes = [p for p in (greedy, sample, beam) if p]
    short = {greedy: "greedy", sample: "best-of-n", beam: "beam"}

    # stage 1: one model per seed (shared by its stage-2 runs)
    per_seed = {}
    for r in rows:
        per_seed[r["seed"]] = r
    # stage-1 wall times are in the runs' metrics.csv (summary.csv has the
    # last stage's)
    root = os.path.dirname(os.path.abspath(a.summary))

    def stage_seconds(run_id, probe):
        path = os.path.join(root, run_id, "metrics.csv")
        if not os.path.exists(path):
            return None
        for m in csv.DictReader(open(path)):
            if m["stage"] == first and m["split"] == probe and m["metric"] == "seconds_per_problem":
                return float(m["value"])
        return None

    print(f"**Stage-1 model ({first}), {a.split} success (%) and seconds per problem**, "
          f"mean ± sd over {len(per_seed)} seeds\n")
    print("| probe | success | s/problem |")
    print("|---|---|---|")
    for p in model_probes:
        s1 = [num(r, f"after:{first}:{p}") for r in per_seed.values()]
        t = [stage_seconds(r["run_id"], p) for r in per_seed.values()]
        print(f"| {short[p]} (`{p}`) | {ms(s1)} | {ms(t, 1.0, 4)} |")
    print()
    print(f"**Symbolic search baselines** (no model; {a.split} split of each seed)\n")
    print("| strategy | success | s/problem |")
    print("|---|---|---|")
    for p in symbolic:
        s = [num(r, f"final:{p}") for r in per_seed.values()]
        t = [num(r, f"seconds_per_problem:{p}") for r in rows]
        print(f"| {p.split('/')[1]} | {ms(s)} | {ms(t, 1.0, 6)} |")
    print()

    groups = defaultdict(list)
    order = []
    for r in rows:
        k = tuple(r[c] for c in axis_cols)
        if k not in groups:
            order.append(k)
        groups[k].append(r)

    def sort_key(k):
        return tuple((0, float(v), "") if v.replace(".", "", 1).replace("e-", "", 1).isdigit()
                     else (1, 0.0, v) for v in k)

    order.sort(key=sort_key)
    head = [c.split(".")[-1] for c in axis_cols]
    for p in model_probes:
        head.append(f"{short[p]} after {last}")
    if beam:
        head.append(f"forgetting (beam {first} - {last})")
    head.append(f"greedy gain ({last} - {first})")
    for p in model_probes:
        head.append(f"s/problem {short[p]}")
    head.append("n")
    print(f"**After stage 2 ({last}), {a.split} success (%)**, mean ± sd over seeds\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k in order:
        rs = groups[k]
        cells = list(k)
        for p in model_probes:
            cells.append(ms([num(r, f"final:{p}") for r in rs]))
        if beam:
            cells.append(ms([num(r, f"after:{first}:{beam}") - num(r, f"after:{last}:{beam}") for r in rs]))
        cells.append(ms([num(r, f"after:{last}:{greedy}") - num(r, f"after:{first}:{greedy}") for r in rs]))
        for p in model_probes:
            cells.append(ms([num(r, f"seconds_per_problem:{p}") for r in rs], 1.0, 4))
        cells.append(str(len(rs)))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
