//! The whole transformer forward pass, with the activations its backward
//! pass needs, and that backward pass, on host slices: the same arithmetic
//! as `Transformer::forward_reference`, op for op.
//!
//! Notation in the shape comments: `n = batch * seq` token rows, `d` model
//! width, `h` heads of width `dh = d / h`, `f` feed-forward width, `v`
//! vocabulary. Every matrix is row-major; weights are `(in, out)`.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::kernels::{
    add_assign, add_row, col_sum, fill_rows, gelu_backward, gelu_forward, gemm_raw, layer_norm,
    layer_norm_back, masked_softmax, matmul, softmax_back, SendPtr, View,
};
use crate::model::{Inputs, PositionKind, Transformer};

/// One block's parameters; `wq | wk | wv` packed side by side.
pub(crate) struct HostBlock {
    ln1: (Vec<f32>, Vec<f32>),
    /// `(d, 3d)`: row `i` is `wq[i] | wk[i] | wv[i]`.
    wqkv: Vec<f32>,
    /// `(3d,)`
    bqkv: Vec<f32>,
    wo: Vec<f32>,
    bo: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

/// Host copy of every parameter of a `Transformer<Cpu>`.
pub(crate) struct HostParams {
    d: usize,
    h: usize,
    f: usize,
    v: usize,
    max_len: usize,
    learned_positions: bool,
    tok_emb: Vec<f32>,
    pos: Vec<f32>,
    blocks: Vec<HostBlock>,
    ln_f: (Vec<f32>, Vec<f32>),
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

/// Side-by-side packing of `(d, d)` matrices into `(d, parts * d)`.
fn pack_cols(parts: &[Vec<f32>], d: usize) -> Vec<f32> {
    let w = parts.len() * d;
    let mut out = vec![0.0f32; parts.iter().map(Vec::len).sum()];
    for (p, m) in parts.iter().enumerate() {
        for r in 0..d {
            out[r * w + p * d..r * w + (p + 1) * d].copy_from_slice(&m[r * d..(r + 1) * d]);
        }
    }
    out
}

impl HostParams {
    pub(crate) fn of(m: &Transformer<Cpu>) -> Self {
        let cfg = &m.cfg;
        let d = cfg.d_model;
        let blocks = m
            .blocks
            .iter()
            .map(|b| HostBlock {
                ln1: (b.ln1.gain.as_vec(), b.ln1.bias.as_vec()),
                wqkv: pack_cols(&[b.wq.weight.as_vec(), b.wk.weight.as_vec(), b.wv.weight.as_vec()], d),
                bqkv: [b.wq.bias.as_vec(), b.wk.bias.as_vec(), b.wv.bias.as_vec()].concat(),
                wo: b.wo.weight.as_vec(),
                bo: b.wo.bias.as_vec(),
                ln2: (b.ln2.gain.as_vec(), b.ln2.bias.as_vec()),
                w1: b.ff1.weight.as_vec(),
                b1: b.ff1.bias.as_vec(),
                w2: b.ff2.weight.as_vec(),
                b2: b.ff2.bias.as_vec(),
            })
            .collect();
        Self {
            d,
            h: cfg.n_heads,
            f: cfg.d_ff,
            v: m.tok_emb.shape().0,
            max_len: m.pos_table.shape().0,
            learned_positions: cfg.positions == PositionKind::Learned,
            tok_emb: m.tok_emb.as_vec(),
            pos: m.pos_table.as_vec(),
            blocks,
            ln_f: (m.ln_f.gain.as_vec(), m.ln_f.bias.as_vec()),
            head_w: m.head.weight.as_vec(),
            head_b: m.head.bias.as_vec(),
        }
    }

    pub(crate) fn vocab(&self) -> usize {
        self.v
    }
}

/// Host copy of the model inputs.
pub(crate) struct HostInputs {
    pub b: usize,
    pub s: usize,
    ids: Vec<usize>,
    positions: Vec<usize>,
    /// `(b, s, s)` additive mask.
    mask: Vec<f32>,
}

impl HostInputs {
    pub(crate) fn of(inp: &Inputs<Cpu>) -> Self {
        let (b, s) = *inp.ids.shape();
        assert_eq!(*inp.positions.shape(), (b, s), "positions must be (batch, seq)");
        assert_eq!(*inp.mask.shape(), (b, s, s), "mask must be (batch, seq, seq)");
        Self {
            b,
            s,
            ids: inp.ids.as_vec(),
            positions: inp.positions.as_vec(),
            mask: inp.mask.as_vec(),
        }
    }
}

/// Activations of one block kept for the backward pass.
struct BlockCache {
    /// `(n, d)` normalised input of ln1 (before gain and bias), `(n,)` 1/σ
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    /// `(n, d)` ln1 output
    xn1: Vec<f32>,
    /// `(n, 3d)` q | k | v
    qkv: Vec<f32>,
    /// `(b, h, s, s)` attention probabilities
    p: Vec<f32>,
    /// `(n, d)` heads' outputs side by side
    ctx: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    xn2: Vec<f32>,
    /// `(n, f)` feed-forward pre-activation and its GELU
    h1: Vec<f32>,
    a1: Vec<f32>,
}

/// Everything the backward pass reads.
pub(crate) struct Cache {
    blocks: Vec<BlockCache>,
    xhatf: Vec<f32>,
    rstdf: Vec<f32>,
    xnf: Vec<f32>,
}

/// Logits `(n, v)`, and with `keep` the activations for [`backward`].
pub(crate) fn forward(w: &HostParams, inp: &HostInputs, keep: bool) -> (Vec<f32>, Option<Cache>) {
    let (b, s, d, h, f, v) = (inp.b, inp.s, w.d, w.h, w.f, w.v);
    let n = b * s;
    let dh = d / h;
    // (n, d): token embedding + position embedding
    let mut x = vec![0.0f32; n * d];
    for (r, xr) in x.chunks_exact_mut(d).enumerate() {
        let (t, p) = (inp.ids[r], inp.positions[r]);
        assert!(t < v, "token id {t} out of range (vocab {v})");
        assert!(p < w.max_len, "position id {p} out of range (max_len {})", w.max_len);
        let (te, pe) = (&w.tok_emb[t * d..(t + 1) * d], &w.pos[p * d..(p + 1) * d]);
        for i in 0..d {
            xr[i] = te[i] + pe[i];
        }
    }
    let kept = |len: usize| if keep { vec![0.0f32; len] } else { Vec::new() };
    let mut caches = Vec::with_capacity(if keep { w.blocks.len() } else { 0 });
    for blk in &w.blocks {
        // attention sub-layer: x += Wo·softmax(q·kᵀ/√dh + mask)·v + bo
        let (mut xhat1, mut rstd1, mut xn1) = (kept(n * d), vec![0.0f32; n], vec![0.0f32; n * d]);
        layer_norm(&x, &blk.ln1.0, &blk.ln1.1, &mut xhat1, &mut xn1, &mut rstd1);
        let mut qkv = vec![0.0f32; n * 3 * d];
        fill_rows(&mut qkv, &blk.bqkv);
        matmul(&mut qkv, &xn1, &blk.wqkv, (n, d, 3 * d), (false, false), true);
        let mut p = vec![0.0f32; b * h * s * s];
        let mut ctx = vec![0.0f32; n * d];
        attention_forward(&qkv, &inp.mask, &mut p, &mut ctx, (b, s, h, dh));
        add_row(&mut x, &blk.bo);
        matmul(&mut x, &ctx, &blk.wo, (n, d, d), (false, false), true);
        // feed-forward sub-layer: x += W2·gelu(W1·ln(x) + b1) + b2
        let (mut xhat2, mut rstd2, mut xn2) = (kept(n * d), vec![0.0f32; n], vec![0.0f32; n * d]);
        layer_norm(&x, &blk.ln2.0, &blk.ln2.1, &mut xhat2, &mut xn2, &mut rstd2);
        let mut h1 = vec![0.0f32; n * f];
        fill_rows(&mut h1, &blk.b1);
        matmul(&mut h1, &xn2, &blk.w1, (n, d, f), (false, false), true);
        let mut a1 = vec![0.0f32; n * f];
        gelu_forward(&h1, &mut a1);
        add_row(&mut x, &blk.b2);
        matmul(&mut x, &a1, &blk.w2, (n, f, d), (false, false), true);
        if keep {
            caches.push(BlockCache {
                xhat1,
                rstd1,
                xn1,
                qkv,
                p,
                ctx,
                xhat2,
                rstd2,
                xn2,
                h1,
                a1,
            });
        }
    }
    let (mut xhatf, mut rstdf, mut xnf) = (kept(n * d), vec![0.0f32; n], vec![0.0f32; n * d]);
    layer_norm(&x, &w.ln_f.0, &w.ln_f.1, &mut xhatf, &mut xnf, &mut rstdf);
    let mut logits = vec![0.0f32; n * v];
    fill_rows(&mut logits, &w.head_b);
    matmul(&mut logits, &xnf, &w.head_w, (n, d, v), (false, false), true);
    let cache = keep.then_some(Cache {
        blocks: caches,
        xhatf,
        rstdf,
        xnf,
    });
    (logits, cache)
}

/// Per (batch row, head): `p = softmax(q·kᵀ/√dh + mask)`, `ctx = p·v`.
fn attention_forward(
    qkv: &[f32],
    mask: &[f32],
    p: &mut [f32],
    ctx: &mut [f32],
    (b, s, h, dh): (usize, usize, usize, usize),
) {
    let d = h * dh;
    let (d3, ss) = (3 * d as isize, s * s);
    let scale = 1.0 / (dh as f32).sqrt();
    assert_eq!(qkv.len(), b * s * 3 * d);
    assert_eq!(ctx.len(), b * s * d);
    assert_eq!(p.len(), b * h * ss);
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let qkv_ptr = qkv.as_ptr() as usize;
    p.par_chunks_mut(ss).enumerate().for_each(|(t, pt)| {
        let (bi, hi) = (t / h, t % h);
        let base = (qkv_ptr as *const f32).wrapping_add(bi * s * 3 * d + hi * dh);
        let q = View { ptr: base, rs: d3, cs: 1 };
        let kt = View { ptr: base.wrapping_add(d), rs: 1, cs: d3 };
        let vv = View { ptr: base.wrapping_add(2 * d), rs: d3, cs: 1 };
        let pv = View { ptr: pt.as_ptr(), rs: s as isize, cs: 1 };
        let ctx_ptr = ctx_ptr;
        // SAFETY: q, k, v address rows bi*s..(bi+1)*s and columns of head hi
        // inside `qkv` (length checked above); this task alone writes `pt`
        // and the (s, dh) block of `ctx` at rows of bi, columns of head hi.
        unsafe {
            gemm_raw((s, dh, s), pt.as_mut_ptr(), s as isize, false, q, kt, 1);
            masked_softmax(pt, &mask[bi * ss..(bi + 1) * ss], scale, s);
            let out = ctx_ptr.0.add(bi * s * d + hi * dh);
            gemm_raw((s, s, dh), out, d as isize, false, pv, vv, 1);
        }
    });
}

/// Attention backward: from `dctx` `(n, d)` to `dqkv` `(n, 3d)` (written).
fn attention_backward(
    qkv: &[f32],
    p: &[f32],
    dctx: &[f32],
    dqkv: &mut [f32],
    (b, s, h, dh): (usize, usize, usize, usize),
) {
    let d = h * dh;
    let (d3, ss) = (3 * d as isize, s * s);
    let scale = 1.0 / (dh as f32).sqrt();
    assert_eq!(qkv.len(), b * s * 3 * d);
    assert_eq!(dqkv.len(), b * s * 3 * d);
    assert_eq!(dctx.len(), b * s * d);
    assert_eq!(p.len(), b * h * ss);
    let out = SendPtr(dqkv.as_mut_ptr());
    let qkv_ptr = qkv.as_ptr() as usize;
    let dctx_ptr = dctx.as_ptr() as usize;
    p.par_chunks(ss).enumerate().for_each_init(
        || vec![0.0f32; ss],
        |dp, (t, pt)| {
            let (bi, hi) = (t / h, t % h);
            let off = bi * s * 3 * d + hi * dh;
            let base = (qkv_ptr as *const f32).wrapping_add(off);
            let q = View { ptr: base, rs: d3, cs: 1 };
            let k = View { ptr: base.wrapping_add(d), rs: d3, cs: 1 };
            let vt = View { ptr: base.wrapping_add(2 * d), rs: 1, cs: d3 };
            let dc = View {
                ptr: (dctx_ptr as *const f32).wrapping_add(bi * s * d + hi * dh),
                rs: d as isize,
                cs: 1,
            };
            let pmt = View { ptr: pt.as_ptr(), rs: 1, cs: s as isize };
            let out = out;
            // SAFETY: reads stay inside qkv / dctx / p (lengths checked
            // above); this task alone writes the q, k and v blocks of head hi
            // at the rows of batch row bi in `dqkv`, and its own `dp`.
            unsafe {
                // dP = dctx · vᵀ; dV = Pᵀ · dctx
                gemm_raw((s, dh, s), dp.as_mut_ptr(), s as isize, false, dc, vt, 1);
                let dv = out.0.add(off + 2 * d);
                gemm_raw((s, s, dh), dv, d3, false, pmt, dc, 1);
                // dS = scale · P ∘ (dP - rowsum(dP ∘ P))
                softmax_back(pt, dp, s, scale * 1.001);
                let ds = View { ptr: dp.as_ptr(), rs: s as isize, cs: 1 };
                let dst = View { ptr: dp.as_ptr(), rs: 1, cs: s as isize };
                // dQ = dS · k; dK = dSᵀ · q
                gemm_raw((s, s, dh), out.0.add(off), d3, false, ds, k, 1);
                gemm_raw((s, s, dh), out.0.add(off + d), d3, false, dst, q, 1);
            }
        },
    );
}

/// Splits `(d, 3d)` side by side into three `(d, d)`.
fn unpack_cols(m: &[f32], d: usize, parts: usize) -> Vec<Vec<f32>> {
    let w = parts * d;
    (0..parts)
        .map(|p| {
            let mut out = vec![0.0f32; d * d];
            for r in 0..d {
                out[r * d..(r + 1) * d].copy_from_slice(&m[r * w + p * d..r * w + (p + 1) * d]);
            }
            out
        })
        .collect()
}

/// Gradients of every parameter, in `Transformer::params` order, given the
/// gradient of the logits `(n, v)`.
pub(crate) fn backward(w: &HostParams, inp: &HostInputs, c: &Cache, dlogits: &[f32]) -> Vec<Vec<f32>> {
    let (b, s, d, h, f, v) = (inp.b, inp.s, w.d, w.h, w.f, w.v);
    let n = b * s;
    let dh = d / h;
    assert_eq!(dlogits.len(), n * v);
    // head: logits = xnf · Wh + bh
    let mut g_head_w = vec![0.0f32; d * v];
    matmul(&mut g_head_w, &c.xnf, dlogits, (d, n, v), (true, false), false);
    let g_head_b = col_sum(dlogits, v);
    let mut dxn = vec![0.0f32; n * d];
    matmul(&mut dxn, dlogits, &w.head_w, (n, v, d), (false, true), false);
    // (n, d): gradient of the residual stream
    let mut dres = vec![0.0f32; n * d];
    let (g_lnf_g, g_lnf_b) = layer_norm_back(&dxn, &c.xhatf, &c.rstdf, &w.ln_f.0, &mut dres, false);
    let mut block_grads: Vec<Vec<Vec<f32>>> = Vec::with_capacity(w.blocks.len());
    let mut da = vec![0.0f32; n * f];
    let mut dctx = vec![0.0f32; n * d];
    let mut dqkv = vec![0.0f32; n * 3 * d];
    for (blk, bc) in w.blocks.iter().zip(&c.blocks).rev() {
        // feed-forward: x += a1 · W2 + b2, a1 = gelu(h1), h1 = xn2 · W1 + b1
        let mut g_w2 = vec![0.0f32; f * d];
        matmul(&mut g_w2, &bc.a1, &dres, (f, n, d), (true, false), false);
        let g_b2 = col_sum(&dres, d);
        matmul(&mut da, &dres, &blk.w2, (n, d, f), (false, true), false);
        gelu_backward(&bc.h1, &mut da);
        let mut g_w1 = vec![0.0f32; d * f];
        matmul(&mut g_w1, &bc.xn2, &da, (d, n, f), (true, false), false);
        let g_b1 = col_sum(&da, f);
        matmul(&mut dxn, &da, &blk.w1, (n, f, d), (false, true), false);
        let (g_ln2_g, g_ln2_b) =
            layer_norm_back(&dxn, &bc.xhat2, &bc.rstd2, &blk.ln2.0, &mut dres, true);
        // attention: x += ctx · Wo + bo
        let mut g_wo = vec![0.0f32; d * d];
        matmul(&mut g_wo, &bc.ctx, &dres, (d, n, d), (true, false), false);
        let g_bo = col_sum(&dres, d);
        matmul(&mut dctx, &dres, &blk.wo, (n, d, d), (false, true), false);
        attention_backward(&bc.qkv, &bc.p, &dctx, &mut dqkv, (b, s, h, dh));
        let mut g_wqkv = vec![0.0f32; d * 3 * d];
        matmul(&mut g_wqkv, &bc.xn1, &dqkv, (d, n, 3 * d), (true, false), false);
        let g_bqkv = col_sum(&dqkv, 3 * d);
        matmul(&mut dxn, &dqkv, &blk.wqkv, (n, 3 * d, d), (false, true), false);
        let (g_ln1_g, g_ln1_b) =
            layer_norm_back(&dxn, &bc.xhat1, &bc.rstd1, &blk.ln1.0, &mut dres, true);
        let mut w3 = unpack_cols(&g_wqkv, d, 3).into_iter();
        let (g_wq, g_wk, g_wv) = (w3.next().unwrap(), w3.next().unwrap(), w3.next().unwrap());
        block_grads.push(vec![
            g_ln1_g,
            g_ln1_b,
            g_wq,
            g_bqkv[..d].to_vec(),
            g_wk,
            g_bqkv[d..2 * d].to_vec(),
            g_wv,
            g_bqkv[2 * d..].to_vec(),
            g_wo,
            g_bo,
            g_ln2_g,
            g_ln2_b,
            g_w1,
            g_b1,
            g_w2,
            g_b2,
        ]);
    }
    // embeddings: scatter-add the residual gradient by token and position id
    let mut g_tok = vec![0.0f32; v * d];
    let mut g_pos = vec![0.0f32; if w.learned_positions { w.max_len * d } else { 0 }];
    for (r, g) in dres.chunks_exact(d).enumerate() {
        let t = inp.ids[r];
        add_assign(&mut g_tok[t * d..(t + 1) * d], g);
        if w.learned_positions {
            let p = inp.positions[r];
            add_assign(&mut g_pos[p * d..(p + 1) * d], g);
        }
    }
    let mut out = vec![g_tok];
    if w.learned_positions {
        out.push(g_pos);
    }
    for g in block_grads.into_iter().rev() {
        out.extend(g);
    }
    out.extend([g_lnf_g, g_lnf_b, g_head_w, g_head_b]);
    out
}
