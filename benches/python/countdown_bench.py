#!/usr/bin/env python3
"""Straightforward Python version of rewind's exact Countdown / Game-of-24
search, for a side-by-side speed comparison with `benches/countdown.rs`.

Same instances (SplitMix64, seed 2024: 4 numbers in 1..=99, target
10..=100), same move order (Stream-of-Search `combine_nums`: a+b, a*b,
larger-smaller, exact larger/smaller; Game of 24 adds smaller/larger with
`fractions.Fraction`), same depth-first enumeration that stops at the first
solution. Standard library only.

    python3 benches/python/countdown_bench.py            # Python numbers only
    python3 benches/python/countdown_bench.py --compare  # also runs
        `cargo bench --bench countdown -- countdown_solver`, reads criterion's
        estimates and prints the Rust/Python throughput ratios

`--manifest-path PATH` is passed on to cargo; criterion's results are read
from $CARGO_TARGET_DIR (default: <repo>/target)/criterion.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from fractions import Fraction

MASK = (1 << 64) - 1


class SplitMix:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def random_instances(n, seed=2024):
    r = SplitMix(seed)
    out = []
    for _ in range(n):
        nums = [1 + r.next() % 99 for _ in range(4)]
        target = 10 + r.next() % 91
        out.append((nums, target))
    return out


def countdown_moves(a, b):
    out = [(a + b, (a, "+", b)), (a * b, (a, "*", b))]
    lo, hi = (a, b) if a <= b else (b, a)
    out.append((hi - lo, (hi, "-", lo)))
    if lo != 0 and hi % lo == 0:
        out.append((hi // lo, (hi, "/", lo)))
    return out


def game24_moves(a, b):
    out = [(a + b, (a, "+", b)), (a * b, (a, "*", b))]
    lo, hi = (a, b) if a <= b else (b, a)
    out.append((hi - lo, (hi, "-", lo)))
    if lo != 0:
        out.append((hi / lo, (hi, "/", lo)))
        if lo != hi:
            out.append((lo / hi, (lo, "/", hi)))
    return out


def solve(nums, target, moves):
    """First move list reaching target, or None after trying all of them."""
    if len(nums) == 1:
        return [] if nums[0] == target else None
    for i, j in itertools.combinations(range(len(nums)), 2):
        rest = [nums[k] for k in range(len(nums)) if k != i and k != j]
        for result, op in moves(nums[i], nums[j]):
            sol = solve(rest + [result], target, moves)
            if sol is not None:
                return [op] + sol
    return None


def game24_multisets():
    r = range(1, 14)
    return [[a, b, c, d] for a in r for b in r if b >= a for c in r if c >= b for d in r if d >= c]


def bench(fn, items, min_time=2.0):
    """Instances per second (repeats the whole set until min_time passes)."""
    reps, solvable = 0, 0
    start = time.perf_counter()
    while True:
        solvable = sum(1 for x in items if fn(x) is not None)
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return reps * len(items) / elapsed, solvable


def python_numbers(min_time):
    cd = random_instances(1000)
    g24 = [([Fraction(x) for x in m], Fraction(24)) for m in game24_multisets()]
    cd_rate, cd_ok = bench(lambda it: solve(it[0], it[1], countdown_moves), cd, min_time)
    g_rate, g_ok = bench(lambda it: solve(it[0], it[1], game24_moves), g24, min_time)
    print(f"python countdown_random_1000: {cd_rate:12.0f} instances/s ({cd_ok} of 1000 solvable)")
    print(f"python game24_all_1820:       {g_rate:12.0f} instances/s ({g_ok} of 1820 solvable)")
    return {"countdown_random_1000": (cd_rate, 1000), "game24_all_1820": (g_rate, 1820)}


def rust_numbers(root, manifest_path):
    cmd = ["cargo", "bench", "--bench", "countdown"]
    if manifest_path:
        cmd += ["--manifest-path", manifest_path]
    cmd += ["--", "countdown_solver"]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=root, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    out = {}
    for name, n in [("countdown_random_1000", 1000), ("game24_all_1820", 1820)]:
        path = os.path.join(target, "criterion", "countdown_solver", name, "new", "estimates.json")
        with open(path) as f:
            ns = json.load(f)["mean"]["point_estimate"]  # per iteration = per instance set
        out[name] = n / (ns * 1e-9)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", action="store_true", help="also run the Rust criterion bench and print ratios")
    ap.add_argument("--manifest-path", default=None, help="passed to cargo bench")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds per Python measurement")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rust = rust_numbers(root, args.manifest_path) if args.compare else None
    py = python_numbers(args.min_time)
    if rust:
        for name, (py_rate, _) in py.items():
            print(f"rust   {name}: {rust[name]:12.0f} instances/s  ratio rust/python = {rust[name] / py_rate:7.1f}x")


if __name__ == "__main__":
    main()
