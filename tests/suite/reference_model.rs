//! An independent plain-Rust f64 transformer: the weighted mean NLL of a
//! batch, computed from the model's named parameters, written from the
//! maths and not from the crate's kernels. `grad_check` compares the fused
//! CPU path's loss with it and the fused gradients with its central finite
//! differences.
//!
//! The model (as `rewind::model` documents it):
//! - `x = tok_emb[id] + pos(position id)`, where `pos` is the learned
//!   `pos_emb` row or, when there is no `pos_emb` parameter, the sinusoidal
//!   encoding `sin(p·f_i)` for even `i`, `cos(p·f_i)` for odd `i`,
//!   `f_i = 10000^(-2⌊i/2⌋/d)`;
//! - pre-norm blocks: `x += attn(ln1(x))·Wo + bo`, then
//!   `x += gelu(ln2(x)·W1 + b1)·W2 + b2`;
//! - attention per head (head `h` owns columns `h·dh..(h+1)·dh` of q, k, v):
//!   `softmax_j(q_i·k_j/√dh + mask_ij)·v_j`;
//! - layer norm `(x − mean)/√(var + 1e-5)·gain + bias` with the biased
//!   variance; gelu is the tanh approximation
//!   `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`;
//! - weights are `(in, out)` (a layer is `x·W + b`), every parameter is a
//!   2-d `(rows, cols)` array (vectors are `(1, n)`);
//! - logits `ln_f(x)·W_head + b_head`, and the loss
//!   `−Σ w·log softmax(z)[y] / Σ w` (0 when `Σ w = 0`).
//!
//! Every parameter must be consumed: an unknown name (or a missing one, or a
//! wrong shape) panics, so a model change that this reference does not
//! describe fails loudly instead of being silently ignored.
//!
//! The mask is added in f64, so a query that sees no key at all gets the
//! softmax of its raw scores here, not the uniform softmax that f32
//! rounding of `score + MASKED` gives; batches compared with this reference
//! must let every query see at least one key.

use std::collections::HashMap;

/// One named parameter, `(rows, cols)` row-major, in f64.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

/// A batch in f64: `ids`, `targets`, `weights`, `positions` are
/// `batch · seq`, row-major; `mask` is `batch · seq · seq` (query-major),
/// additive.
#[derive(Clone, Debug)]
pub struct RefBatch {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<usize>,
    pub targets: Vec<usize>,
    pub weights: Vec<f64>,
    pub positions: Vec<usize>,
    pub mask: Vec<f64>,
}

/// Looks parameters up by name, checking shapes and that each is used.
struct Lookup<'a> {
    by_name: HashMap<&'a str, &'a Param>,
    used: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl<'a> Lookup<'a> {
    fn new(params: &'a [Param]) -> Self {
        let mut by_name = HashMap::new();
        for p in params {
            assert_eq!(p.data.len(), p.rows * p.cols, "{}: data length", p.name);
            assert!(
                by_name.insert(p.name.as_str(), p).is_none(),
                "duplicate parameter {}",
                p.name
            );
        }
        Self {
            by_name,
            used: Default::default(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The parameter `name`, which must be `(rows, cols)`.
    fn get(&self, name: &str, rows: usize, cols: usize) -> &'a [f64] {
        let p = self
            .by_name
            .get(name)
            .unwrap_or_else(|| panic!("missing parameter {name}"));
        assert_eq!((p.rows, p.cols), (rows, cols), "{name}: shape (rows, cols)");
        self.used.borrow_mut().insert(name.to_string());
        &p.data
    }

    fn check_all_used(&self) {
        let used = self.used.borrow();
        let mut unused: Vec<&str> = self
            .by_name
            .keys()
            .copied()
            .filter(|n| !used.contains(*n))
            .collect();
        unused.sort();
        assert!(
            unused.is_empty(),
            "parameters the reference does not know: {unused:?}"
        );
    }
}

/// `x · W + b` for `x: (n, din)`, `W: (din, dout)`, `b: (1, dout)`.
fn affine(x: &[f64], n: usize, din: usize, w: &[f64], b: &[f64], dout: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * dout];
    for r in 0..n {
        let yr = &mut y[r * dout..(r + 1) * dout];
        yr.copy_from_slice(b);
        for k in 0..din {
            let xk = x[r * din + k];
            for (o, yo) in yr.iter_mut().enumerate() {
                *yo += xk * w[k * dout + o];
            }
        }
    }
    y
}

/// Layer norm of each row of `x: (n, d)`: biased variance, eps 1e-5.
fn layer_norm(x: &[f64], n: usize, d: usize, gain: &[f64], bias: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; n * d];
    for r in 0..n {
        let row = &x[r * d..(r + 1) * d];
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for i in 0..d {
            y[r * d + i] = (row[i] - mean) * inv * gain[i] + bias[i];
        }
    }
    y
}

/// The tanh approximation of gelu.
fn gelu(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

/// The sinusoidal encoding of position `p`, width `d`, scaled to the RMS
/// of GPT-2-initialised embeddings (std 0.02): entries ±0.02·√2.
fn sinusoid(p: usize, d: usize) -> Vec<f64> {
    let scale = 0.02 * std::f64::consts::SQRT_2;
    (0..d)
        .map(|i| {
            let freq = 10000f64.powf(-((2 * (i / 2)) as f64) / d as f64);
            let a = p as f64 * freq;
            scale * if i % 2 == 0 { a.sin() } else { a.cos() }
        })
        .collect()
}

/// Logits `(batch · seq, vocab)` of `batch` under `params` with `n_heads`
/// attention heads; the other sizes come from the parameter shapes.
pub fn reference_logits(params: &[Param], n_heads: usize, batch: &RefBatch) -> Vec<f64> {
    let lk = Lookup::new(params);
    let tok_p = params
        .iter()
        .find(|p| p.name == "tok_emb")
        .expect("missing parameter tok_emb");
    let (vocab, d) = (tok_p.rows, tok_p.cols);
    assert!(d % n_heads == 0, "d_model {d} not divisible by {n_heads}");
    let dh = d / n_heads;
    let n_layers = (0..)
        .take_while(|i| lk.has(&format!("blocks.{i}.ln1.gain")))
        .count();
    let (b, s) = (batch.batch, batch.seq);
    assert_eq!(batch.ids.len(), b * s);
    assert_eq!(batch.positions.len(), b * s);
    assert_eq!(batch.mask.len(), b * s * s);

    let tok = lk.get("tok_emb", vocab, d);
    let learned = lk.has("pos_emb");
    let max_len = params
        .iter()
        .find(|p| p.name == "pos_emb")
        .map_or(0, |p| p.rows);
    let pos: &[f64] = if learned {
        lk.get("pos_emb", max_len, d)
    } else {
        &[]
    };
    let mut out = Vec::with_capacity(b * s * vocab);
    for r in 0..b {
        // the residual stream of this row, (s, d)
        let mut x = vec![0.0; s * d];
        for i in 0..s {
            let id = batch.ids[r * s + i];
            let p = batch.positions[r * s + i];
            assert!(id < vocab, "id {id} out of vocab {vocab}");
            let pe = if learned {
                assert!(p < max_len, "position {p} out of table {max_len}");
                pos[p * d..(p + 1) * d].to_vec()
            } else {
                sinusoid(p, d)
            };
            for c in 0..d {
                x[i * d + c] = tok[id * d + c] + pe[c];
            }
        }
        let mask = &batch.mask[r * s * s..(r + 1) * s * s];
        for l in 0..n_layers {
            let pre = format!("blocks.{l}");
            let g = |n: &str, rows, cols| lk.get(&format!("{pre}.{n}"), rows, cols);
            // attention sub-layer
            let xn = layer_norm(&x, s, d, g("ln1.gain", 1, d), g("ln1.bias", 1, d));
            let q = affine(&xn, s, d, g("wq.weight", d, d), g("wq.bias", 1, d), d);
            let k = affine(&xn, s, d, g("wk.weight", d, d), g("wk.bias", 1, d), d);
            let v = affine(&xn, s, d, g("wv.weight", d, d), g("wv.bias", 1, d), d);
            let mut ctx = vec![0.0; s * d];
            let scale = 1.0 / (dh as f64).sqrt();
            for h in 0..n_heads {
                let cols = h * dh..(h + 1) * dh;
                for i in 0..s {
                    let scores: Vec<f64> = (0..s)
                        .map(|j| {
                            let dot: f64 = cols.clone().map(|c| q[i * d + c] * k[j * d + c]).sum();
                            dot * scale + mask[i * s + j]
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|z| (z - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in cols.clone() {
                        ctx[i * d + c] = (0..s).map(|j| e[j] / z * v[j * d + c]).sum();
                    }
                }
            }
            let att = affine(&ctx, s, d, g("wo.weight", d, d), g("wo.bias", 1, d), d);
            for (xi, a) in x.iter_mut().zip(&att) {
                *xi += a;
            }
            // feed-forward sub-layer
            let f = params
                .iter()
                .find(|p| p.name == format!("{pre}.ff1.weight"))
                .unwrap_or_else(|| panic!("missing parameter {pre}.ff1.weight"))
                .cols;
            let xn = layer_norm(&x, s, d, g("ln2.gain", 1, d), g("ln2.bias", 1, d));
            let mut hid = affine(&xn, s, d, g("ff1.weight", d, f), g("ff1.bias", 1, f), f);
            for hv in hid.iter_mut() {
                *hv = gelu(*hv);
            }
            let ff = affine(&hid, s, f, g("ff2.weight", f, d), g("ff2.bias", 1, d), d);
            for (xi, a) in x.iter_mut().zip(&ff) {
                *xi += a;
            }
        }
        let xn = layer_norm(
            &x,
            s,
            d,
            lk.get("ln_f.gain", 1, d),
            lk.get("ln_f.bias", 1, d),
        );
        out.extend(affine(
            &xn,
            s,
            d,
            lk.get("head.weight", d, vocab),
            lk.get("head.bias", 1, vocab),
            vocab,
        ));
    }
    lk.check_all_used();
    out
}

/// The weighted mean negative log-likelihood `−Σ w·log softmax(z)[y] / Σ w`
/// of `batch` (0 when the weights sum to 0).
pub fn reference_loss(params: &[Param], n_heads: usize, batch: &RefBatch) -> f64 {
    let logits = reference_logits(params, n_heads, batch);
    let n = batch.batch * batch.seq;
    assert_eq!(batch.targets.len(), n);
    assert_eq!(batch.weights.len(), n);
    let vocab = logits.len() / n.max(1);
    let (mut total, mut wsum) = (0.0, 0.0);
    for t in 0..n {
        let w = batch.weights[t];
        wsum += w;
        if w == 0.0 {
            continue;
        }
        let z = &logits[t * vocab..(t + 1) * vocab];
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let y = batch.targets[t];
        assert!(y < vocab, "target {y} out of vocab {vocab}");
        total += w * (lse - z[y]);
    }
    if wsum == 0.0 {
        0.0
    } else {
        total / wsum
    }
}

// ------------------------------------------------------------ self-tests

/// A tiny parameter set, all values from a simple deterministic sequence.
fn toy_params(vocab: usize, d: usize, f: usize, learned: bool) -> Vec<Param> {
    let mut k = 0u64;
    let mut next = move || {
        // a fixed pseudo-random sequence in [-0.5, 0.5)
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (k >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut p = |name: &str, rows: usize, cols: usize| Param {
        name: name.to_string(),
        rows,
        cols,
        data: (0..rows * cols).map(|_| next()).collect(),
    };
    let mut out = vec![p("tok_emb", vocab, d)];
    if learned {
        out.push(p("pos_emb", 8, d));
    }
    for n in ["ln1.gain", "ln1.bias"] {
        out.push(p(&format!("blocks.0.{n}"), 1, d));
    }
    for n in ["wq", "wk", "wv", "wo"] {
        out.push(p(&format!("blocks.0.{n}.weight"), d, d));
        out.push(p(&format!("blocks.0.{n}.bias"), 1, d));
    }
    for n in ["ln2.gain", "ln2.bias"] {
        out.push(p(&format!("blocks.0.{n}"), 1, d));
    }
    out.push(p("blocks.0.ff1.weight", d, f));
    out.push(p("blocks.0.ff1.bias", 1, f));
    out.push(p("blocks.0.ff2.weight", f, d));
    out.push(p("blocks.0.ff2.bias", 1, d));
    out.push(p("ln_f.gain", 1, d));
    out.push(p("ln_f.bias", 1, d));
    out.push(p("head.weight", d, vocab));
    out.push(p("head.bias", 1, vocab));
    out
}

fn causal_batch(b: usize, s: usize, vocab: usize) -> RefBatch {
    let n = b * s;
    let mut mask = vec![-1e9; n * s];
    for r in 0..b {
        for i in 0..s {
            for j in 0..=i {
                mask[(r * s + i) * s + j] = 0.0;
            }
        }
    }
    RefBatch {
        batch: b,
        seq: s,
        ids: (0..n).map(|t| (3 * t + 1) % vocab).collect(),
        targets: (0..n).map(|t| (5 * t + 2) % vocab).collect(),
        weights: (0..n).map(|t| (t % 3) as f64 * 0.5).collect(),
        positions: (0..n).map(|t| t % s).collect(),
        mask,
    }
}

/// With the output head zeroed every logit is equal, so the loss of any
/// batch is exactly ln(vocab), whatever the rest of the model does.
#[test]
fn reference_loss_is_ln_vocab_when_the_head_is_zero() {
    let vocab = 7;
    let mut params = toy_params(vocab, 4, 6, true);
    for p in params.iter_mut().filter(|p| p.name.starts_with("head.")) {
        p.data.fill(0.0);
    }
    let loss = reference_loss(&params, 2, &causal_batch(2, 5, vocab));
    assert!((loss - (vocab as f64).ln()).abs() < 1e-12, "{loss}");
}

/// A key hidden from every query that could read it changes nothing: the
/// token at the last position is seen only by itself, so changing its id
/// leaves the logits of every earlier position unchanged, and changing an
/// earlier id does change the last position's logits (the test can fail).
#[test]
fn reference_logits_ignore_keys_hidden_by_the_mask() {
    for learned in [true, false] {
        let vocab = 7;
        let params = toy_params(vocab, 4, 6, learned);
        let (b, s) = (1, 5);
        let base = causal_batch(b, s, vocab);
        let z0 = reference_logits(&params, 2, &base);
        let mut later = base.clone();
        later.ids[s - 1] = (later.ids[s - 1] + 1) % vocab;
        let z1 = reference_logits(&params, 2, &later);
        assert_eq!(z0[..(s - 1) * vocab], z1[..(s - 1) * vocab]);
        assert_ne!(z0[(s - 1) * vocab..], z1[(s - 1) * vocab..]);
        let mut earlier = base.clone();
        earlier.ids[0] = (earlier.ids[0] + 1) % vocab;
        let z2 = reference_logits(&params, 2, &earlier);
        assert_ne!(z0[(s - 1) * vocab..], z2[(s - 1) * vocab..]);
    }
}

/// An unknown parameter name fails loudly (a model change the reference
/// does not describe cannot pass unnoticed).
#[test]
#[should_panic(expected = "parameters the reference does not know")]
fn reference_rejects_parameters_it_does_not_know() {
    let mut params = toy_params(5, 4, 6, true);
    params.push(Param {
        name: "blocks.0.extra.weight".into(),
        rows: 1,
        cols: 1,
        data: vec![0.0],
    });
    reference_loss(&params, 2, &causal_batch(1, 3, 5));
}
