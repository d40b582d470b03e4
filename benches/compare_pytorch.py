#!/usr/bin/env python3
"""rewind against PyTorch, side by side, on this machine: the training step
(`--bench train-step`, the default) or batched key/value-cached generation
(`--bench generate`, see the end of this docstring).

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

Generation (`--bench generate [--batches 8,64] [--pairs 3] [--threads N]`):
new tokens per second of `rewind bench generate` (one CachedDecoder,
`generate_cached` per call) against a KV-cached decoder in PyTorch with the
same shapes: the quickstart model (d_model 128, 4 heads, 2 layers, ff
512, vocab 100) randomly initialised, `<bos>` + 8 prompt tokens, 128 new
tokens per row, sampling at temperature 1 (inverse CDF of the softmax, the
method rewind uses). `<eos>` is suppressed in both (head bias -1e4) so that
every row decodes all 128 actions; `<bksp>` is sampled (about 1 in 100)
and pops: rewind pops its cache, PyTorch decrements the row's length.
The PyTorch decoder runs under `torch.inference_mode()`, prefills the
prompt in one causal pass, keeps a preallocated cache (layers, batch, k|v,
heads, max_len, dh) written in place at each row's length, attends over
the longest row's positions with a per-row length mask (`manual`, the
same ops as rewind, or `sdpa`; the faster counts), and keeps the logits
of every position so that a pop restores the previous ones, as rewind
does; it is checked against a full forward pass first. Threads: the same
count for both (default: every core); PyTorch is also timed on one thread
(its threads can stall each other on small ops when the machine is busy)
and "best PyTorch" is the faster. The two sides alternate, pair after
pair; each side reports the median of its timed calls, and the script
prints every pair's ratios and the median ratios over the pairs. On a
machine other work keeps busy, run it with OMP_WAIT_POLICY=PASSIVE: with
the default policy PyTorch's threads then wait on each other for
milliseconds per op (a batch-8 run slows to tens of tokens per second).
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


# ---------------------------------------------------------------- generation

GEN = dict(vocab=100, d_model=128, heads=4, layers=2, ff=512, prompt=8, new_tokens=128)
BOS, EOS, BKSP = 1, 2, 3  # rewind::data::vocab


def run_rewind_generate(binary, c, batch, threads, warmup, iters):
    cmd = [binary, "--threads", str(threads), "bench", "generate", "--batch", str(batch)]
    for k in ("vocab", "d_model", "heads", "layers", "ff", "prompt", "new_tokens"):
        cmd += ["--" + k.replace("_", "-"), str(c[k])]
    cmd += ["--warmup", str(warmup), "--iters", str(iters)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    vals = dict(re.findall(r"^(\w+)=([0-9.eE+-]+)$", out, re.M))
    if "generate_tokens_per_s" not in vals:
        sys.exit(f"unexpected output from {' '.join(cmd)}:\n{out}")
    bksp = re.search(r"([0-9.]+) of them <bksp>", out)
    return float(vals["generate_tokens_per_s"]), float(bksp.group(1)) if bksp else float("nan")


def build_torch_decoder(torch, c):
    """rewind's architecture with q|k|v as one (d, 3d) layer (as rewind's
    decoder packs them), randomly initialised, `<eos>` suppressed."""
    nn = torch.nn
    d, v = c["d_model"], c["vocab"]
    max_len = 1 + c["prompt"] + c["new_tokens"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.wo = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ff1, self.ff2 = nn.Linear(d, c["ff"]), nn.Linear(c["ff"], d)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb, self.pos_emb = nn.Embedding(v, d), nn.Embedding(max_len, d)
            self.blocks = nn.ModuleList(Block() for _ in range(c["layers"]))
            self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, v)

    torch.manual_seed(0)
    model = Model()
    for name, p in model.named_parameters():
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, 0.02)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    with torch.no_grad():
        model.head.bias[EOS] = -1e4
    return model.eval()


def torch_generate(torch, model, c, prompts, gen, sdpa, check=False):
    """Actions (batch, new_tokens) after `prompts` (batch, P), KV-cached;
    with `check`, also each row's final state and next-token logits."""
    F = torch.nn.functional
    b, P = prompts.shape
    d, h, L, V = c["d_model"], c["heads"], c["layers"], c["vocab"]
    dh = d // h
    T = P + c["new_tokens"]
    scale = 1.0 / math.sqrt(dh)
    # zeros, not empty: masked positions still pass through the products
    kv = torch.zeros(L, b, 2, h, T, dh)
    hist = torch.empty(b, T, V)  # the logits after every position
    rows = torch.arange(b)
    # prefill: every prompt has P tokens, one causal pass
    x = model.tok_emb(prompts) + model.pos_emb(torch.arange(P))
    causal = torch.ones(P, P, dtype=torch.bool).tril()
    for l, blk in enumerate(model.blocks):
        q, k, v = blk.qkv(blk.ln1(x)).view(b, P, 3, h, dh).permute(2, 0, 3, 1, 4)
        kv[l, :, 0, :, :P], kv[l, :, 1, :, :P] = k, v
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=causal)
        x = x + blk.wo(ctx.transpose(1, 2).reshape(b, P, d))
        x = x + blk.ff2(F.gelu(blk.ff1(blk.ln2(x)), approximate="tanh"))
    hist[:, :P] = model.head(model.ln_f(x))
    lengths = torch.full((b,), P, dtype=torch.long)
    actions = torch.empty(b, c["new_tokens"], dtype=torch.long)
    pending = pushed = None
    for step in range(c["new_tokens"]):
        if pending is not None:
            # every row runs; a row that popped (nothing pending) writes its
            # slot past its length, which stays masked and is overwritten
            pos = lengths
            x = model.tok_emb(pending) + model.pos_emb(pos)
            t = int(pos.max()) + 1
            seen = torch.arange(t) <= pos[:, None]  # (b, t)
            if sdpa:
                mask = seen[:, None, None, :]
            else:
                mask = torch.zeros(b, 1, 1, t).masked_fill_(~seen[:, None, None, :], float("-inf"))
            for l, blk in enumerate(model.blocks):
                qkv = blk.qkv(blk.ln1(x)).view(b, 3, h, dh)
                kv[l, rows, :, :, pos] = qkv[:, 1:]
                keys, values = kv[l, :, 0, :, :t], kv[l, :, 1, :, :t]
                q = qkv[:, 0, :, None]  # (b, h, 1, dh)
                if sdpa:
                    ctx = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
                else:
                    ctx = ((q @ keys.transpose(-1, -2)) * scale + mask).softmax(-1) @ values
                x = x + blk.wo(ctx.reshape(b, d))
                x = x + blk.ff2(F.gelu(blk.ff1(blk.ln2(x)), approximate="tanh"))
            hist[rows, pos] = model.head(model.ln_f(x))
            lengths = lengths + pushed
        probs = hist[rows, lengths - 1].softmax(-1)
        u = torch.rand(b, 1, generator=gen)
        tok = (probs.cumsum(-1) < u).sum(-1).clamp_(max=V - 1)
        actions[:, step] = tok
        bk = tok == BKSP
        lengths = lengths - (bk & (lengths > P)).long()  # pop: never the prompt
        pushed = (~bk).long()
        pending = tok
    if check:
        states = []
        for r in range(b):
            st = prompts[r].tolist()
            for a in actions[r].tolist()[:-1]:  # the last action is never run
                if a == BKSP:
                    if len(st) > P:
                        st.pop()
                else:
                    st.append(a)
            states.append(st)
        return actions, states, hist[rows, lengths - 1]
    return actions


def check_torch_generate(torch, model, c):
    """The cached decoder's logits against a full forward pass of each final
    state (the last action excluded): exits if they differ."""
    F = torch.nn.functional
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(BOS + 1, c["vocab"], (16, 1 + c["prompt"]), generator=g)
    for sdpa in (False, True):
        with torch.inference_mode():
            actions, states, last = torch_generate(torch, model, c, prompts, g, sdpa, check=True)
            worst = 0.0
            for st, want in zip(states, last):
                ids = torch.tensor(st)[None]
                s = ids.shape[1]
                x = model.tok_emb(ids) + model.pos_emb(torch.arange(s))
                for blk in model.blocks:
                    b, dh = 1, c["d_model"] // c["heads"]
                    q, k, v = blk.qkv(blk.ln1(x)).view(b, s, 3, c["heads"], dh).permute(2, 0, 3, 1, 4)
                    ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    x = x + blk.wo(ctx.transpose(1, 2).reshape(b, s, c["d_model"]))
                    x = x + blk.ff2(F.gelu(blk.ff1(blk.ln2(x)), approximate="tanh"))
                full = model.head(model.ln_f(x))[0, -1]
                worst = max(worst, (full - want).abs().max().item())
        pops = (actions == BKSP).sum().item()
        if worst > 1e-4 or pops == 0:
            sys.exit(f"PyTorch cached decoder (sdpa={sdpa}) is wrong: logits differ by {worst}, {pops} pops")


def run_torch_generate(torch, model, c, batch, warmup, iters, sdpa):
    """Median tokens/s over `iters` calls, and the mean <bksp> count."""
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(BOS + 1, c["vocab"], (batch, 1 + c["prompt"]), generator=g)
    prompts[:, 0] = BOS
    times, bksp = [], []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            a = torch_generate(torch, model, c, prompts, g, sdpa)
            dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
                bksp.append((a == BKSP).sum().item())
    return batch * c["new_tokens"] / statistics.median(times), statistics.mean(bksp)


def main_generate(args):
    import torch

    c = GEN
    threads = int(args.threads) if args.threads else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    model = build_torch_decoder(torch, c)
    check_torch_generate(torch, model, c)
    print(f"PyTorch {torch.__version__}, {os.cpu_count()} CPUs, {threads} threads each; "
          f"rewind: {args.rewind}", flush=True)
    print(f"model {c}; sampling at temperature 1, <eos> suppressed", flush=True)
    # PyTorch's intra-op threads help little on these small ops and, on a
    # machine shared with other work, can stall on each other: its
    # single-thread run is timed too, and the faster of the two counts as
    # "best" (the conservative ratio)
    one = threads > 1 and not args.no_single_thread_torch
    print()
    print("| batch | pair | rewind tok/s | PyTorch manual / sdpa tok/s"
          + (" | PyTorch 1 thread manual / sdpa tok/s" if one else "")
          + " | rewind / PyTorch | rewind / best PyTorch |")
    print("|---|---|---|---|" + ("---|" if one else "") + "---|---|")
    summary = []
    for batch in (int(b) for b in args.batches.split(",")):
        same, best, rws, pts, pbs = [], [], [], [], []
        for pair in range(args.pairs):
            rw, rw_bk = run_rewind_generate(args.rewind, c, batch, threads, args.warmup, args.iters)
            torch.set_num_threads(threads)
            man, pt_bk = run_torch_generate(torch, model, c, batch, args.warmup, args.iters, sdpa=False)
            sd, _ = run_torch_generate(torch, model, c, batch, args.warmup, args.iters, sdpa=True)
            pt = max(man, sd)
            cols = f"{man:.0f} / {sd:.0f}"
            pb = pt
            if one:
                torch.set_num_threads(1)
                man1, _ = run_torch_generate(torch, model, c, batch, args.warmup, args.iters, sdpa=False)
                sd1, _ = run_torch_generate(torch, model, c, batch, args.warmup, args.iters, sdpa=True)
                torch.set_num_threads(threads)
                pb = max(pt, man1, sd1)
                cols += f" | {man1:.0f} / {sd1:.0f}"
            same.append(rw / pt)
            best.append(rw / pb)
            rws.append(rw)
            pts.append(pt)
            pbs.append(pb)
            print(f"| {batch} | {pair} | {rw:.0f} | {cols} | {rw / pt:.2f} | {rw / pb:.2f} |", flush=True)
            if pair == 0:
                bk = f"<bksp> per call: rewind {rw_bk:.1f}, PyTorch {pt_bk:.1f}"
        med = statistics.median
        summary.append((batch, med(rws), med(pts), med(pbs), med(same), med(best), min(best), max(best), bk))
    print()
    print("| batch | rewind tok/s | PyTorch tok/s | best PyTorch tok/s | rewind / PyTorch | "
          "rewind / best PyTorch (min-max) |")
    print("|---|---|---|---|---|---|")
    for batch, rw, pt, pb, r, rb, lo, hi, _ in summary:
        print(f"| {batch} | {rw:.0f} | {pt:.0f} | {pb:.0f} | {r:.2f} | {rb:.2f} ({lo:.2f}-{hi:.2f}) |")
    print(f"(medians over {args.pairs} pairs; {threads} threads; best PyTorch: the faster of "
          f"{threads} threads and 1 thread, manual and sdpa attention)")
    for batch, *_, bk in summary:
        print(f"batch {batch}: {bk}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rewind", default=os.environ.get("REWIND_BIN", "target/release/rewind"))
    ap.add_argument("--bench", choices=["train-step", "generate"], default="train-step")
    ap.add_argument("--sizes", default="quickstart,large", help="train-step: model sizes")
    ap.add_argument("--threads", default=None,
                    help="train-step: thread counts (default 1,2); generate: one count (default: every core)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps/calls (default 3 / 1)")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed steps (default 20; the large model uses a quarter) / calls (default 5)")
    ap.add_argument("--batches", default="8,64", help="generate: batch sizes")
    ap.add_argument("--pairs", type=int, default=3, help="generate: rewind/PyTorch pairs per batch size")
    ap.add_argument("--no-single-thread-torch", action="store_true",
                    help="generate: do not also time PyTorch on one thread")
    args = ap.parse_args()
    if args.bench == "generate":
        args.warmup = 1 if args.warmup is None else args.warmup
        args.iters = 5 if args.iters is None else args.iters
        return main_generate(args)
    args.threads = args.threads or "1,2"
    args.warmup = 3 if args.warmup is None else args.warmup
    args.iters = 20 if args.iters is None else args.iters
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
