#!/usr/bin/env python3
"""Two rewind builds against each other and against PyTorch, in one run.

For a refactor that must not slow the training step: times `rewind bench
train-step` of build A (e.g. the commit before) and build B (the working
tree) and the same step in PyTorch (benches/compare_pytorch.py's model),
alternating A, B, PyTorch in each round so that load on a shared machine
hits all three alike, and prints per round the ratios B/A, A/PyTorch and
B/PyTorch and their medians over the rounds.

Usage (PyTorch in .venv, see benches/compare_pytorch.sh):
    .venv/bin/python benches/compare_builds.py --a /tmp/rewind-old \\
        --b target/release/rewind [--sizes quickstart] [--threads 2] [--rounds 5]
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_pytorch as cp  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="rewind binary A (baseline)")
    ap.add_argument("--b", required=True, help="rewind binary B (candidate)")
    ap.add_argument("--sizes", default="quickstart")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    print("| model | threads | round | A ms | B ms | PyTorch ms | B/A | A/PyTorch | B/PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        c = cp.SIZES[size]
        iters = args.iters if size == "quickstart" else max(3, args.iters // 4)
        for threads in [int(t) for t in args.threads.split(",")]:
            ratios = {"B/A": [], "A/PT": [], "B/PT": []}
            for r in range(args.rounds):
                a, _ = cp.run_rewind(args.a, c, threads, 3, iters)
                b, _ = cp.run_rewind(args.b, c, threads, 3, iters)
                pt = min(cp.run_torch(c, threads, 3, iters, sdpa) for sdpa in (False, True))
                ratios["B/A"].append(b / a)
                ratios["A/PT"].append(a / pt)
                ratios["B/PT"].append(b / pt)
                print(f"| {size} | {threads} | {r} | {a:.1f} | {b:.1f} | {pt:.1f} | {b / a:.3f} | {a / pt:.3f} | {b / pt:.3f} |", flush=True)
            med = {k: statistics.median(v) for k, v in ratios.items()}
            print(f"| {size} | {threads} | median | | | | {med['B/A']:.3f} | {med['A/PT']:.3f} | {med['B/PT']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
