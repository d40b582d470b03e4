//! A host copy of a model's parameters, packed for the CPU kernels: read
//! from the parameter table by index, shared by the fused forward/backward
//! ([`super::fused`]) and the cached decoder ([`super::decode`]).

use dfdx::prelude::*;

use super::params::BlockParam;
use super::Transformer;
use crate::kernels::pool::Buf;

/// One block's parameters; `wq | wk | wv` packed side by side.
pub struct HostBlock {
    pub ln1: (Buf, Buf),
    /// `(d, 3d)`: row `i` is `wq[i] | wk[i] | wv[i]`.
    pub wqkv: Buf,
    /// `(3d,)`
    pub bqkv: Buf,
    pub wo: Buf,
    pub bo: Buf,
    pub ln2: (Buf, Buf),
    pub w1: Buf,
    pub b1: Buf,
    pub w2: Buf,
    pub b2: Buf,
}

/// Host copy of every parameter of a transformer (and its position table).
pub struct HostParams {
    pub d: usize,
    pub h: usize,
    pub f: usize,
    pub v: usize,
    pub max_len: usize,
    pub learned_positions: bool,
    pub tok_emb: Buf,
    /// `(max_len, d)`: learned or sinusoidal.
    pub pos: Buf,
    pub blocks: Vec<HostBlock>,
    pub ln_f: (Buf, Buf),
    pub head_w: Buf,
    pub head_b: Buf,
}

/// Host copy of a 2-d tensor.
fn host<D: Device<f32>>(t: &Tensor<(usize, usize), f32, D>) -> Buf {
    let mut b = Buf::uninit(t.shape().num_elements());
    t.copy_into(&mut b);
    b
}

/// `(d, d)` matrices side by side: `(d, parts.len() * d)`.
fn pack_cols<D: Device<f32>>(parts: &[&Tensor<(usize, usize), f32, D>], d: usize) -> Buf {
    let w = parts.len() * d;
    let mut out = Buf::uninit(d * w);
    for (p, m) in parts.iter().enumerate() {
        let m = host(*m);
        for r in 0..d {
            out[r * w + p * d..r * w + (p + 1) * d].copy_from_slice(&m[r * d..(r + 1) * d]);
        }
    }
    out
}

/// Vectors (`(1, n)` tensors) end to end.
fn concat<D: Device<f32>>(parts: &[&Tensor<(usize, usize), f32, D>]) -> Buf {
    let mut out = Buf::uninit(parts.iter().map(|t| t.shape().num_elements()).sum());
    let mut at = 0;
    for t in parts {
        let n = t.shape().num_elements();
        t.copy_into(&mut out[at..at + n]);
        at += n;
    }
    out
}

impl HostParams {
    /// Copies `m`'s parameters to the host (a copy from the device on GPUs).
    pub fn of<D: Device<f32>>(m: &Transformer<D>) -> Self {
        use BlockParam::*;
        let cfg = &m.cfg;
        let d = cfg.d_model;
        let t = m.table();
        let blocks = (0..t.n_layers())
            .map(|l| {
                let p = |q: BlockParam| m.param(t.block(l, q));
                HostBlock {
                    ln1: (host(p(Ln1Gain)), host(p(Ln1Bias))),
                    wqkv: pack_cols(&[p(WqWeight), p(WkWeight), p(WvWeight)], d),
                    bqkv: concat(&[p(WqBias), p(WkBias), p(WvBias)]),
                    wo: host(p(WoWeight)),
                    bo: host(p(WoBias)),
                    ln2: (host(p(Ln2Gain)), host(p(Ln2Bias))),
                    w1: host(p(Ff1Weight)),
                    b1: host(p(Ff1Bias)),
                    w2: host(p(Ff2Weight)),
                    b2: host(p(Ff2Bias)),
                }
            })
            .collect();
        let (lg, lb) = t.ln_f();
        let (hw, hb) = t.head();
        Self {
            d,
            h: cfg.n_heads,
            f: cfg.d_ff,
            v: m.param(t.tok_emb()).shape().0,
            max_len: m.pos_table().shape().0,
            learned_positions: t.pos_emb().is_some(),
            tok_emb: host(m.param(t.tok_emb())),
            pos: host(m.pos_table()),
            blocks,
            ln_f: (host(m.param(lg)), host(m.param(lb))),
            head_w: host(m.param(hw)),
            head_b: host(m.param(hb)),
        }
    }
}
