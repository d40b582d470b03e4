#!/usr/bin/env python3
"""rewind's training step against PyTorch's, side by side, on this machine.

For each model size and thread count this runs `rewind bench train-step`
(the fused CPU path) and the same step in PyTorch, one after the other in
the same run, and prints both medians, their ratio and the share of the
machine's peak FLOP/s each reaches (peak = the faster of PyTorch's and
gemm's 2048^3 f32 matmul on the same threads, measured in this run).

The PyTorch model is rewind's architecture: token + learned position
embeddings, pre-norm blocks (layer norm eps 1e-5; q, k, v, o projections
with bias; attention softmax(q k^T / sqrt(dh) + mask) v with an additive
(batch, seq, seq) mask broadcast over heads; feed-forward with GELU's tanh
approximation), a final layer norm and a linear head. The step is the same
too: mean token cross-entropy (every position weighted 1), backward,
gradient clipping to norm 1.0, AdamW (betas 0.9/0.99, eps 1e-8, weight
decay 0.1 on weight matrices and embeddings only). The batch is random
token ids with a causal mask, as in rewind's bench.

Attention runs two ways in PyTorch: written out (`manual`, the same ops as
rewind) and `F.scaled_dot_product_attention` with the additive mask
(`sdpa`); the ratio is taken against the faster of the two.

Usage (benches/compare_pytorch.sh sets up .venv and builds rewind first):
    python3 benches/compare_pytorch.py [--rewind target/release/rewind]
        [--sizes quickstart,large] [--threads 1,2] [--iters 20]
"""

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import time

SIZES = {
    # experiments/quickstart.toml's model and batch (64 sequences of 17 tokens)
    "quickstart": dict(vocab=100, d_model=128, heads=4, layers=2, ff=512, seq=17, batch=64),
    # the larger model of the performance issue
    "large": dict(vocab=100, d_model=256, heads=4, layers=4, ff=1024, seq=128, batch=32),
}


def step_flops(c):
    """Matmul FLOPs of one step, as rewind::cli::bench::train_step_flops counts them."""
    n = c["batch"] * c["seq"]
    d, f, v = c["d_model"], c["ff"], c["vocab"]
    per_layer = 2 * n * (4 * d * d + 2 * d * f) + 2 * 2 * n * c["seq"] * d
    return 3 * (c["layers"] * per_layer + 2 * n * d * v)


def run_rewind(binary, c, threads, warmup, iters):
    cmd = [binary, "--threads", str(threads), "bench", "train-step"]
    for k in ("vocab", "d_model", "heads", "layers", "ff", "seq", "batch"):
        cmd += ["--" + k.replace("_", "-"), str(c[k])]
    cmd += ["--warmup", str(warmup), "--iters", str(iters)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vals = dict(re.findall(r"^(\w+)=([0-9.eE+-]+)$", out, re.M))
    last = out.strip().splitlines()[-1]
    if not last.startswith("train_step_ms="):
        sys.exit(f"unexpected output from {' '.join(cmd)}:\n{out}")
    return float(vals["train_step_ms"]), float(vals.get("peak_gflops", "nan"))


def build_torch_model(torch, c):
    nn = torch.nn
    F = torch.nn.functional
    d, h = c["d_model"], c["heads"]
    dh = d // h

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d) for _ in range(4))
            self.ln2 = nn.LayerNorm(d)
            self.ff1 = nn.Linear(d, c["ff"])
            self.ff2 = nn.Linear(c["ff"], d)

        def forward(self, x, mask, sdpa):
            b, s, _ = x.shape
            xn = self.ln1(x)
            q = self.wq(xn).view(b, s, h, dh).transpose(1, 2)  # (b, h, s, dh)
            k = self.wk(xn).view(b, s, h, dh).transpose(1, 2)
            v = self.wv(xn).view(b, s, h, dh).transpose(1, 2)
            if sdpa:
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:
                att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh)) + mask
                ctx = att.softmax(-1) @ v  # (b, h, s, dh)
            x = x + self.wo(ctx.transpose(1, 2).reshape(b, s, d))
            return x + self.ff2(F.gelu(self.ff1(self.ln2(x)), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(c["vocab"], d)
            self.pos_emb = nn.Embedding(c["seq"], d)
            self.blocks = nn.ModuleList(Block() for _ in range(c["layers"]))
            self.ln_f = nn.LayerNorm(d)
            self.head = nn.Linear(d, c["vocab"])

        def forward(self, ids, pos, mask, sdpa):
            x = self.tok_emb(ids) + self.pos_emb(pos)
            m = mask.unsqueeze(1)  # (b, 1, s, s): the same mask for every head
            for blk in self.blocks:
                x = blk(x, m, sdpa)
            return self.head(self.ln_f(x))

    torch.manual_seed(0)
    model = Model()
    for name, p in model.named_parameters():
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, 0.02)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    return model


def run_torch(c, threads, warmup, iters, sdpa):
    import torch

    torch.set_num_threads(threads)
    model = build_torch_model(torch, c)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.99),
        eps=1e-8,
    )
    g = torch.Generator().manual_seed(1)
    b, s, v = c["batch"], c["seq"], c["vocab"]
    ids = torch.randint(0, v, (b, s), generator=g)
    targets = torch.randint(0, v, (b, s), generator=g)
    pos = torch.arange(s).expand(b, s)
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    mask = torch.zeros(b, s, s).masked_fill(~causal, -1e9)
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        logits = model(ids, pos, mask, sdpa)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, v), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            times.append(dt)
    return statistics.median(times)


def torch_peak_gflops(threads, n=2048, reps=3):
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(ts) * 1e-9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rewind", default=os.environ.get("REWIND_BIN", "target/release/rewind"))
    ap.add_argument("--sizes", default="quickstart,large")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20, help="timed steps (the large model uses a quarter)")
    args = ap.parse_args()
    import torch

    print(f"PyTorch {torch.__version__}, {os.cpu_count()} CPUs; rewind: {args.rewind}", flush=True)
    rows = []
    for size in args.sizes.split(","):
        c = SIZES[size]
        iters = args.iters if size == "quickstart" else max(3, args.iters // 4)
        warmup = args.warmup if size == "quickstart" else max(1, args.warmup // 2)
        for threads in (int(t) for t in args.threads.split(",")):
            rw, gemm_peak = run_rewind(args.rewind, c, threads, warmup, iters)
            manual = run_torch(c, threads, warmup, iters, sdpa=False)
            sdpa = run_torch(c, threads, warmup, iters, sdpa=True)
            peak = max(torch_peak_gflops(threads), gemm_peak if gemm_peak == gemm_peak else 0.0)
            gflop = step_flops(c) * 1e-9
            row = (size, threads, rw, manual, sdpa, rw / min(manual, sdpa), gflop / (rw * 1e-3) / peak,
                   gflop / (min(manual, sdpa) * 1e-3) / peak, peak)
            rows.append(row)
            print(f"{size} threads={threads}: rewind {rw:.1f} ms, torch manual {manual:.1f} ms, "
                  f"sdpa {sdpa:.1f} ms, ratio {row[5]:.2f}", flush=True)
    print()
    print("| model | threads | rewind ms | PyTorch ms (manual / sdpa) | rewind / PyTorch | "
          "rewind FLOP/s / peak | PyTorch FLOP/s / peak | peak GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for size, t, rw, man, sd, ratio, fr, ft, peak in rows:
        print(f"| {size} | {t} | {rw:.1f} | {man:.1f} / {sd:.1f} | {ratio:.2f} | {fr:.2f} | {ft:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
