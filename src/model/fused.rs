//! The fused CPU path of the transformer: the whole forward pass on host
//! slices, keeping the activations its backward pass needs, and that
//! hand-written backward pass: the same arithmetic as
//! [`Transformer::forward_reference`], op for op, several times faster.
//!
//! Why: dfdx 0.13 runs element-wise ops, softmax and permutes
//! single-threaded, each as a separate pass with its own allocation, and its
//! matmul reaches about 2/3 of this machine's peak. Here:
//! - every matmul is a packed AVX2/FMA kernel (`crate::kernels`; the `gemm`
//!   crate on other CPUs), bias additions fused into its write-back, heads
//!   read in place (no permutes), q/k/v as one product;
//! - layer norm, GELU, the masked softmax and their backward passes are
//!   fused row loops, vectorised and rayon-parallel;
//! - attention skips, per block of 32 queries, the keys the mask hides from
//!   the whole block (half the attention arithmetic under a causal mask);
//! - activations live in pooled buffers.
//!
//! The training step ([`crate::train`]) calls [`forward`] with `keep`,
//! hands the logits to the objective, and passes the logits' gradient to
//! [`backward`], which returns every parameter's gradient in table order.
//! `tests/suite/fused.rs` checks values and gradients against the composite
//! path.
//!
//! Notation in the shape comments: `n = batch * seq` token rows, `d` model
//! width, `h` heads of width `dh = d / h`, `f` feed-forward width, `v`
//! vocabulary. Every matrix is row-major; weights are `(in, out)`.

use rayon::prelude::*;

use super::host::HostParams;
use super::params::{BlockParam, ParamTable};
use crate::data::Batch;
use crate::kernels::ops::{
    add_assign, col_sum, gelu_backward, gelu_forward, gemm_raw, layer_norm, layer_norm_back,
    masked_softmax, matmul, matmul_bias, min_len, softmax_back, SendPtr, View,
};
use crate::kernels::pool::Buf;
#[allow(unused_imports)] // named in the docs
use crate::model::Transformer;

/// The model inputs of a batch, as the fused kernels read them.
pub(crate) struct HostInputs<'a> {
    pub b: usize,
    pub s: usize,
    ids: &'a [usize],
    positions: &'a [usize],
    /// `(b, s, s)` additive mask.
    mask: &'a [f32],
}

impl<'a> HostInputs<'a> {
    pub(crate) fn of(batch: &'a Batch) -> Self {
        let (b, s) = (batch.batch, batch.seq);
        assert_eq!(batch.ids.len(), b * s, "ids must be (batch, seq)");
        assert_eq!(
            batch.positions.len(),
            b * s,
            "positions must be (batch, seq)"
        );
        assert_eq!(
            batch.mask.len(),
            b * s * s,
            "mask must be (batch, seq, seq)"
        );
        Self {
            b,
            s,
            ids: &batch.ids,
            positions: &batch.positions,
            mask: &batch.mask,
        }
    }
}

/// Logits `(batch·seq, vocab)` of `batch`, keeping no activations.
pub fn logits(w: &HostParams, batch: &Batch) -> Vec<f32> {
    forward(w, &HostInputs::of(batch), false).0
}

/// One forward and backward pass: `objective` gets the logits
/// `(batch·seq, vocab)` and returns the loss and its gradient with respect
/// to them; the result is the loss and every parameter's gradient in
/// `table` order.
pub fn forward_backward<E>(
    w: &HostParams,
    table: &ParamTable,
    batch: &Batch,
    objective: impl FnOnce(&[f32]) -> Result<(f64, Vec<f32>), E>,
) -> Result<(f64, Vec<Buf>), E> {
    let inp = HostInputs::of(batch);
    let (logits, cache) = forward(w, &inp, true);
    let (loss, dlogits) = objective(&logits)?;
    drop(logits);
    let cache = cache.expect("kept activations");
    Ok((loss, backward(w, table, &inp, &cache, &dlogits)))
}

/// Activations of one block kept for the backward pass.
struct BlockCache {
    /// `(n, d)` normalised input of ln1 (before gain and bias), `(n,)` 1/σ
    xhat1: Buf,
    rstd1: Buf,
    /// `(n, d)` ln1 output
    xn1: Buf,
    /// `(n, 3d)` q | k | v
    qkv: Buf,
    /// `(b, h, s, s)` attention probabilities
    p: Buf,
    /// `(n, d)` heads' outputs side by side
    ctx: Buf,
    xhat2: Buf,
    rstd2: Buf,
    xn2: Buf,
    /// `(n, f)` feed-forward pre-activation and its GELU
    h1: Buf,
    a1: Buf,
}

/// Everything the backward pass reads.
pub(crate) struct Cache {
    blocks: Vec<BlockCache>,
    xhatf: Buf,
    rstdf: Buf,
    xnf: Buf,
}

/// Logits `(n, v)`, and with `keep` the activations for [`backward`].
pub(crate) fn forward(w: &HostParams, inp: &HostInputs, keep: bool) -> (Vec<f32>, Option<Cache>) {
    let (b, s, d, h, f, v) = (inp.b, inp.s, w.d, w.h, w.f, w.v);
    let n = b * s;
    let dh = d / h;
    // (n, d): token embedding + position embedding
    let mut x = Buf::uninit(n * d);
    for (r, xr) in x.chunks_exact_mut(d).enumerate() {
        let (t, p) = (inp.ids[r], inp.positions[r]);
        assert!(t < v, "token id {t} out of range (vocab {v})");
        assert!(
            p < w.max_len,
            "position id {p} out of range (max_len {})",
            w.max_len
        );
        let (te, pe) = (&w.tok_emb[t * d..(t + 1) * d], &w.pos[p * d..(p + 1) * d]);
        for i in 0..d {
            xr[i] = te[i] + pe[i];
        }
    }
    let kept = |len: usize| if keep { Buf::uninit(len) } else { Buf::empty() };
    let mut caches = Vec::with_capacity(if keep { w.blocks.len() } else { 0 });
    for blk in &w.blocks {
        // attention sub-layer: x += Wo·softmax(q·kᵀ/√dh + mask)·v + bo
        let (mut xhat1, mut rstd1, mut xn1) = (kept(n * d), Buf::uninit(n), Buf::uninit(n * d));
        layer_norm(&x, &blk.ln1.0, &blk.ln1.1, &mut xhat1, &mut xn1, &mut rstd1);
        let mut qkv = Buf::uninit(n * 3 * d);
        let bqkv = Some(&blk.bqkv[..]);
        matmul_bias(
            &mut qkv,
            &xn1,
            &blk.wqkv,
            (n, d, 3 * d),
            (false, false),
            false,
            bqkv,
        );
        let mut p = Buf::uninit(b * h * s * s);
        let mut ctx = Buf::uninit(n * d);
        attention_forward(&qkv, inp.mask, &mut p, &mut ctx, (b, s, h, dh));
        matmul_bias(
            &mut x,
            &ctx,
            &blk.wo,
            (n, d, d),
            (false, false),
            true,
            Some(&blk.bo),
        );
        // feed-forward sub-layer: x += W2·gelu(W1·ln(x) + b1) + b2
        let (mut xhat2, mut rstd2, mut xn2) = (kept(n * d), Buf::uninit(n), Buf::uninit(n * d));
        layer_norm(&x, &blk.ln2.0, &blk.ln2.1, &mut xhat2, &mut xn2, &mut rstd2);
        let mut h1 = Buf::uninit(n * f);
        matmul_bias(
            &mut h1,
            &xn2,
            &blk.w1,
            (n, d, f),
            (false, false),
            false,
            Some(&blk.b1),
        );
        let mut a1 = Buf::uninit(n * f);
        gelu_forward(&h1, &mut a1);
        matmul_bias(
            &mut x,
            &a1,
            &blk.w2,
            (n, f, d),
            (false, false),
            true,
            Some(&blk.b2),
        );
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
    let (mut xhatf, mut rstdf, mut xnf) = (kept(n * d), Buf::uninit(n), Buf::uninit(n * d));
    layer_norm(&x, &w.ln_f.0, &w.ln_f.1, &mut xhatf, &mut xnf, &mut rstdf);
    let mut logits = vec![0.0f32; n * v];
    let head_b = Some(&w.head_b[..]);
    matmul_bias(
        &mut logits,
        &xnf,
        &w.head_w,
        (n, d, v),
        (false, false),
        false,
        head_b,
    );
    let cache = keep.then_some(Cache {
        blocks: caches,
        xhatf,
        rstdf,
        xnf,
    });
    (logits, cache)
}

/// Query rows per attention block (see [`key_extents`]).
const QUERY_BLOCK: usize = 32;

/// An additive mask value at or below this hides its key completely: with
/// rewind's `MASKED` (-1e9) the key's softmax weight is exactly 0 for any
/// finite scores below 1e8, so the key can be left out of the arithmetic.
const HIDDEN: f32 = crate::data::MASKED * 0.5;

/// For each batch row and block of [`QUERY_BLOCK`] queries, how many leading
/// keys the block needs: one past the last key any of its queries sees. A
/// causal mask lets a block skip every later key (about half the attention
/// arithmetic at long sequences); a query that sees no key at all (padding)
/// gets the uniform softmax over every key, as in the composite path, so
/// its block keeps all of them.
fn key_extents(mask: &[f32], b: usize, s: usize) -> Vec<usize> {
    let nb = s.div_ceil(QUERY_BLOCK);
    let mut out = vec![0usize; b * nb];
    for bi in 0..b {
        for blk in 0..nb {
            let rows = blk * QUERY_BLOCK..((blk + 1) * QUERY_BLOCK).min(s);
            out[bi * nb + blk] = rows
                .map(|i| {
                    let m = &mask[(bi * s + i) * s..(bi * s + i + 1) * s];
                    m.iter().rposition(|&x| x > HIDDEN).map_or(s, |j| j + 1)
                })
                .max()
                .unwrap_or(s);
        }
    }
    out
}

/// Per (batch row, head): `p = softmax(q·kᵀ/√dh + mask)`, `ctx = p·v`,
/// block by block of queries; `p` is 0 at the keys a block skips.
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
    assert_eq!(mask.len(), b * ss);
    let ext = key_extents(mask, b, s);
    let nb = s.div_ceil(QUERY_BLOCK);
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let qkv_ptr = qkv.as_ptr() as usize;
    p.par_chunks_mut(ss)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(t, pt)| {
            let (bi, hi) = (t / h, t % h);
            let base = (qkv_ptr as *const f32).wrapping_add(bi * s * 3 * d + hi * dh);
            for blk in 0..nb {
                let i0 = blk * QUERY_BLOCK;
                let rows = QUERY_BLOCK.min(s - i0);
                let kr = ext[bi * nb + blk];
                let q = View {
                    ptr: base.wrapping_add(i0 * 3 * d),
                    rs: d3,
                    cs: 1,
                };
                let kt = View {
                    ptr: base.wrapping_add(d),
                    rs: 1,
                    cs: d3,
                };
                let vv = View {
                    ptr: base.wrapping_add(2 * d),
                    rs: d3,
                    cs: 1,
                };
                let pblk = &mut pt[i0 * s..(i0 + rows) * s];
                // SAFETY: q, k, v address rows of batch row bi and the columns
                // of head hi inside `qkv` (length checked above); this task
                // alone writes `pt` and the ctx block of (bi, hi).
                unsafe {
                    gemm_raw(
                        (rows, dh, kr),
                        pblk.as_mut_ptr(),
                        s as isize,
                        false,
                        q,
                        kt,
                        None,
                        1,
                    );
                }
                for r in 0..rows {
                    let row = &mut pblk[r * s..(r + 1) * s];
                    let m = &mask[bi * ss + (i0 + r) * s..][..kr];
                    masked_softmax(&mut row[..kr], m, scale, kr);
                    row[kr..].fill(0.0);
                }
                let pv = View {
                    ptr: pblk.as_ptr(),
                    rs: s as isize,
                    cs: 1,
                };
                // SAFETY: as above.
                unsafe {
                    let out = ctx_ptr.get().add((bi * s + i0) * d + hi * dh);
                    gemm_raw((rows, kr, dh), out, d as isize, false, pv, vv, None, 1);
                }
            }
        });
}

/// Attention backward: from `dctx` `(n, d)` to `dqkv` `(n, 3d)` (written),
/// over the same query blocks and key extents as the forward pass.
fn attention_backward(
    qkv: &[f32],
    mask: &[f32],
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
    let ext = key_extents(mask, b, s);
    let nb = s.div_ceil(QUERY_BLOCK);
    let out = SendPtr(dqkv.as_mut_ptr());
    let qkv_ptr = qkv.as_ptr() as usize;
    let dctx_ptr = dctx.as_ptr() as usize;
    p.par_chunks(ss)
        .enumerate()
        .with_min_len(min_len())
        .for_each_init(
            // dP of a query block
            || vec![0.0f32; QUERY_BLOCK * s],
            |scratch, (t, pt)| {
                let (bi, hi) = (t / h, t % h);
                let off = bi * s * 3 * d + hi * dh;
                let base = (qkv_ptr as *const f32).wrapping_add(off);
                // SAFETY (every block below): reads stay inside qkv / dctx / p
                // (lengths checked above); this task alone writes the q, k and v
                // blocks of head hi at the rows of batch row bi in `dqkv`, and
                // its own `dp`.
                unsafe {
                    // dK and dV accumulate over query blocks: start from 0
                    for j in 0..s {
                        let row = out.get().add(off + j * 3 * d);
                        std::slice::from_raw_parts_mut(row.add(d), dh).fill(0.0);
                        std::slice::from_raw_parts_mut(row.add(2 * d), dh).fill(0.0);
                    }
                }
                for blk in 0..nb {
                    let i0 = blk * QUERY_BLOCK;
                    let rows = QUERY_BLOCK.min(s - i0);
                    let kr = ext[bi * nb + blk];
                    let q = View {
                        ptr: base.wrapping_add(i0 * 3 * d),
                        rs: d3,
                        cs: 1,
                    };
                    let k = View {
                        ptr: base.wrapping_add(d),
                        rs: d3,
                        cs: 1,
                    };
                    let vt = View {
                        ptr: base.wrapping_add(2 * d),
                        rs: 1,
                        cs: d3,
                    };
                    let dc = View {
                        ptr: (dctx_ptr as *const f32).wrapping_add((bi * s + i0) * d + hi * dh),
                        rs: d as isize,
                        cs: 1,
                    };
                    let pblk = &pt[i0 * s..(i0 + rows) * s];
                    let pmt = View {
                        ptr: pblk.as_ptr(),
                        rs: 1,
                        cs: s as isize,
                    };
                    let dpb = &mut scratch[..rows * kr];
                    unsafe {
                        // dP = dctx · vᵀ; dV += Pᵀ · dctx
                        gemm_raw(
                            (rows, dh, kr),
                            dpb.as_mut_ptr(),
                            kr as isize,
                            false,
                            dc,
                            vt,
                            None,
                            1,
                        );
                        let dv = out.get().add(off + 2 * d);
                        gemm_raw((kr, rows, dh), dv, d3, true, pmt, dc, None, 1);
                    }
                    // dS = scale · P ∘ (dP - rowsum(dP ∘ P))
                    for r in 0..rows {
                        softmax_back(
                            &pblk[r * s..r * s + kr],
                            &mut dpb[r * kr..(r + 1) * kr],
                            kr,
                            scale,
                        );
                    }
                    let ds = View {
                        ptr: dpb.as_ptr(),
                        rs: kr as isize,
                        cs: 1,
                    };
                    let dst = View {
                        ptr: dpb.as_ptr(),
                        rs: 1,
                        cs: kr as isize,
                    };
                    unsafe {
                        // dQ = dS · k; dK += dSᵀ · q
                        let dq = out.get().add(off + i0 * 3 * d);
                        gemm_raw((rows, kr, dh), dq, d3, false, ds, k, None, 1);
                        gemm_raw(
                            (kr, rows, dh),
                            out.get().add(off + d),
                            d3,
                            true,
                            dst,
                            q,
                            None,
                            1,
                        );
                    }
                }
            },
        );
}

/// Splits `(d, 3d)` side by side into three `(d, d)`.
fn unpack_cols(m: &[f32], d: usize, parts: usize) -> Vec<Buf> {
    let w = parts * d;
    (0..parts)
        .map(|p| {
            let mut out = Buf::uninit(d * d);
            for r in 0..d {
                out[r * d..(r + 1) * d].copy_from_slice(&m[r * w + p * d..r * w + (p + 1) * d]);
            }
            out
        })
        .collect()
}

/// Gradients of every parameter, in `table` order, given the
/// gradient of the logits `(n, v)`.
pub(crate) fn backward(
    w: &HostParams,
    table: &ParamTable,
    inp: &HostInputs,
    c: &Cache,
    dlogits: &[f32],
) -> Vec<Buf> {
    use BlockParam::*;
    let (b, s, d, h, f, v) = (inp.b, inp.s, w.d, w.h, w.f, w.v);
    let n = b * s;
    let dh = d / h;
    assert_eq!(dlogits.len(), n * v);
    // head: logits = xnf · Wh + bh
    let mut g_head_w = Buf::uninit(d * v);
    matmul(
        &mut g_head_w,
        &c.xnf,
        dlogits,
        (d, n, v),
        (true, false),
        false,
    );
    let g_head_b = Buf::from(col_sum(dlogits, v));
    let mut dxn = Buf::uninit(n * d);
    matmul(
        &mut dxn,
        dlogits,
        &w.head_w,
        (n, v, d),
        (false, true),
        false,
    );
    // (n, d): gradient of the residual stream
    let mut dres = Buf::uninit(n * d);
    let (g_lnf_g, g_lnf_b) = layer_norm_back(&dxn, &c.xhatf, &c.rstdf, &w.ln_f.0, &mut dres, false);
    // every parameter's gradient, filled by table index
    let mut out: Vec<Buf> = (0..table.len()).map(|_| Buf::empty()).collect();
    let mut da = Buf::uninit(n * f);
    let mut dctx = Buf::uninit(n * d);
    let mut dqkv = Buf::uninit(n * 3 * d);
    for (l, (blk, bc)) in w.blocks.iter().zip(&c.blocks).enumerate().rev() {
        // feed-forward: x += a1 · W2 + b2, a1 = gelu(h1), h1 = xn2 · W1 + b1
        let mut g_w2 = Buf::uninit(f * d);
        matmul(&mut g_w2, &bc.a1, &dres, (f, n, d), (true, false), false);
        let g_b2 = col_sum(&dres, d);
        matmul(&mut da, &dres, &blk.w2, (n, d, f), (false, true), false);
        gelu_backward(&bc.h1, &bc.a1, &mut da);
        let mut g_w1 = Buf::uninit(d * f);
        matmul(&mut g_w1, &bc.xn2, &da, (d, n, f), (true, false), false);
        let g_b1 = col_sum(&da, f);
        matmul(&mut dxn, &da, &blk.w1, (n, f, d), (false, true), false);
        let (g_ln2_g, g_ln2_b) =
            layer_norm_back(&dxn, &bc.xhat2, &bc.rstd2, &blk.ln2.0, &mut dres, true);
        // attention: x += ctx · Wo + bo
        let mut g_wo = Buf::uninit(d * d);
        matmul(&mut g_wo, &bc.ctx, &dres, (d, n, d), (true, false), false);
        let g_bo = col_sum(&dres, d);
        matmul(&mut dctx, &dres, &blk.wo, (n, d, d), (false, true), false);
        attention_backward(&bc.qkv, inp.mask, &bc.p, &dctx, &mut dqkv, (b, s, h, dh));
        let mut g_wqkv = Buf::uninit(d * 3 * d);
        matmul(
            &mut g_wqkv,
            &bc.xn1,
            &dqkv,
            (d, n, 3 * d),
            (true, false),
            false,
        );
        let g_bqkv = col_sum(&dqkv, 3 * d);
        matmul(
            &mut dxn,
            &dqkv,
            &blk.wqkv,
            (n, 3 * d, d),
            (false, true),
            false,
        );
        let (g_ln1_g, g_ln1_b) =
            layer_norm_back(&dxn, &bc.xhat1, &bc.rstd1, &blk.ln1.0, &mut dres, true);
        let mut w3 = unpack_cols(&g_wqkv, d, 3).into_iter();
        let (g_wq, g_wk, g_wv) = (w3.next().unwrap(), w3.next().unwrap(), w3.next().unwrap());
        for (q, g) in [
            (Ln1Gain, g_ln1_g.into()),
            (Ln1Bias, g_ln1_b.into()),
            (WqWeight, g_wq),
            (WqBias, g_bqkv[..d].to_vec().into()),
            (WkWeight, g_wk),
            (WkBias, g_bqkv[d..2 * d].to_vec().into()),
            (WvWeight, g_wv),
            (WvBias, g_bqkv[2 * d..].to_vec().into()),
            (WoWeight, g_wo),
            (WoBias, g_bo.into()),
            (Ln2Gain, g_ln2_g.into()),
            (Ln2Bias, g_ln2_b.into()),
            (Ff1Weight, g_w1),
            (Ff1Bias, g_b1.into()),
            (Ff2Weight, g_w2),
            (Ff2Bias, g_b2.into()),
        ] {
            out[table.block(l, q)] = g;
        }
    }
    // embeddings: scatter-add the residual gradient by token and position id
    let mut g_tok = Buf::zeroed(v * d);
    let mut g_pos = Buf::zeroed(if w.learned_positions {
        w.max_len * d
    } else {
        0
    });
    for (r, g) in dres.chunks_exact(d).enumerate() {
        let t = inp.ids[r];
        add_assign(&mut g_tok[t * d..(t + 1) * d], g);
        if w.learned_positions {
            let p = inp.positions[r];
            add_assign(&mut g_pos[p * d..(p + 1) * d], g);
        }
    }
    out[table.tok_emb()] = g_tok;
    if let Some(i) = table.pos_emb() {
        out[i] = g_pos;
    }
    let ((lg, lb), (hw, hb)) = (table.ln_f(), table.head());
    out[lg] = g_lnf_g.into();
    out[lb] = g_lnf_b.into();
    out[hw] = g_head_w;
    out[hb] = g_head_b;
    out
}
