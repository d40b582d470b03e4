//! Host kernels of the fused CPU path, on plain row-major `f32` slices:
//! matmul (`sgemm.rs` on x86-64 with AVX2 + FMA, else the `gemm` crate),
//! layer norm, GELU, masked softmax, cross-entropy and their backward passes.
//!
//! Element-wise loops are written so that the compiler vectorises them
//! (independent lanes, explicit 8-wide partial sums, a polynomial `exp`
//! instead of libm's) and are compiled twice: once for the baseline target
//! and once with AVX2 + FMA, picked at run time (the `simd!` macro). No loop uses
//! fused multiply-add implicitly, so both versions give bit-identical
//! results. Every parallel loop splits its work into chunks of a fixed size,
//! never by thread count, so results do not depend on the number of threads.

use rayon::prelude::*;

/// Whether the AVX2 + FMA versions of the element-wise kernels can run.
#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn name(args)` whose body is compiled for the baseline target and
/// again with AVX2 + FMA enabled, choosing the latter at run time when the
/// CPU has it. Arguments must be plain values or references (no generics).
macro_rules! simd {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support AVX2 and FMA (checked by the caller).
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if has_avx2() {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Rows per parallel task for row-wise kernels: a fixed size, so sums do not
/// depend on the thread count.
pub(crate) const ROW_CHUNK: usize = 32;

/// The `with_min_len` every parallel loop uses: on a one-thread pool, no
/// split at all, so the loop runs on the calling thread and never enters the
/// pool. (Sweep jobs train on threads of their own; with `--threads 1`
/// they would otherwise all queue behind rayon's single worker.)
pub(crate) fn min_len() -> usize {
    if rayon::current_num_threads() > 1 {
        1
    } else {
        usize::MAX
    }
}

// ---------------------------------------------------------------- matmul

pub(crate) use super::ptr::{SendPtr, View};

/// `c = a · b` (or `c += a · b` with `acc`), `c` being `m x n` with row
/// stride `c_rs` and unit column stride, `a` `m x k`, `b` `k x n`; then
/// `bias` (a row of `n`), if given, is added to every row of `c`.
/// `threads > 1` lets the product split over the current rayon pool.
///
/// # Safety
/// Every element addressed through the views and `c` must be in bounds of a
/// live allocation, and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw(
    (m, k, n): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    acc: bool,
    a: View,
    b: View,
    bias: Option<&[f32]>,
    threads: usize,
) {
    if let Some(bias) = bias {
        assert!(bias.len() >= n, "bias shorter than a row");
    }
    #[cfg(target_arch = "x86_64")]
    if super::sgemm::available() {
        let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr());
        return super::sgemm::sgemm((m, k, n), c, c_rs, acc, a, b, bias, threads);
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                std::slice::from_raw_parts_mut(c.offset(i as isize * c_rs), n).fill(0.0);
            }
        }
    } else {
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            c_rs,
            acc,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            if acc { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    if let Some(bias) = bias {
        for i in 0..m {
            let row = std::slice::from_raw_parts_mut(c.offset(i as isize * c_rs), n);
            add_assign(row, &bias[..n]);
        }
    }
}

/// `c (m x n) [+]= op(a) · op(b) [+ bias]` on contiguous row-major slices,
/// using the current rayon pool: `a` is `m x k`, or `k x m` read transposed
/// when `trans.0`; `b` is `k x n`, or `n x k` read transposed when
/// `trans.1`; `bias`, if given, is a row of `n` added to every row.
pub(crate) fn matmul_bias(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    trans: (bool, bool),
    acc: bool,
    bias: Option<&[f32]>,
) {
    assert_eq!(c.len(), m * n, "matmul: c is not m x n");
    assert_eq!(a.len(), m * k, "matmul: a is not m x k");
    assert_eq!(b.len(), k * n, "matmul: b is not k x n");
    let av = if trans.0 {
        View {
            ptr: a.as_ptr(),
            rs: 1,
            cs: m as isize,
        }
    } else {
        View {
            ptr: a.as_ptr(),
            rs: k as isize,
            cs: 1,
        }
    };
    let bv = if trans.1 {
        View {
            ptr: b.as_ptr(),
            rs: 1,
            cs: k as isize,
        }
    } else {
        View {
            ptr: b.as_ptr(),
            rs: n as isize,
            cs: 1,
        }
    };
    // SAFETY: the views address exactly the checked slices; `c` is a
    // distinct `&mut` borrow.
    unsafe {
        gemm_raw(
            (m, k, n),
            c.as_mut_ptr(),
            n as isize,
            acc,
            av,
            bv,
            bias,
            rayon::current_num_threads(),
        )
    };
}

/// [`matmul_bias`] without a bias.
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    mkn: (usize, usize, usize),
    trans: (bool, bool),
    acc: bool,
) {
    matmul_bias(c, a, b, mkn, trans, acc, None)
}

// ---------------------------------------------------------------- math

/// `e^x` to about 2 ulp (Cephes' polynomial), vectorisable: exactly 0 below
/// -87 (so a masked attention score contributes exactly nothing), NaN in,
/// NaN out.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = xc - n * C1 - n * C2;
    let z = r * r;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5; // Cephes' 5.0000001201e-1, rounded to f32
    y = y * z + r + 1.0;
    let out = y * f32::from_bits(((ni + 127) << 23) as u32);
    let out = if x < -87.0 { 0.0 } else { out };
    if x.is_nan() {
        x
    } else {
        out
    }
}

/// `tanh(u) = 1 - 2 / (e^{2u} + 1)`.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

/// `√(2/π)`, as dfdx's `fast_gelu` computes it.
const GELU_K0: f32 = 0.797_884_6;
const GELU_K1: f32 = 0.044_715;

/// The tanh approximation of GELU (dfdx's `fast_gelu`, PyTorch's
/// `gelu(approximate="tanh")`).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let t = tanh(GELU_K0 * (x + GELU_K1 * x * x * x));
    0.5 * x * (1.0 + t)
}

/// d gelu(x) / dx (the closed form; the backward pass uses [`gelu_grad_from`]).
#[cfg(test)]
fn gelu_grad(x: f32) -> f32 {
    let x2 = x * x;
    let t = tanh(GELU_K0 * (x + GELU_K1 * x2 * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x2)
}

/// Sum with 8 independent partial sums (vectorises; a fixed order).
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in chunks.remainder() {
        s += v;
    }
    s
}

/// `Σ x_i y_i`, 8 partial sums.
#[inline(always)]
pub(crate) fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f32; 8];
    let mut xc = x.chunks_exact(8);
    let mut yc = y.chunks_exact(8);
    for (a, b) in (&mut xc).zip(&mut yc) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in xc.remainder().iter().zip(yc.remainder()) {
        s += a * b;
    }
    s
}

/// Largest element (-inf for an empty slice), 8 partial maxima.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(chunks.remainder()) {
        m = if v > m { v } else { m };
    }
    m
}

// ---------------------------------------------------------------- layer norm

/// Layer-norm epsilon (PyTorch's default, and the composite path's).
pub(crate) const LN_EPS: f32 = 1e-5;

simd! {
    /// Layer norm of the rows of `x` (`rows x d`): `xhat = (x - mean) / √(var + eps)`,
    /// `y = xhat * gain + bias`; `rstd` receives `1/√(var + eps)` per row.
    /// `xhat` may be empty (inference: not kept).
    pub(crate) fn layer_norm_rows(
        x: &[f32],
        gain: &[f32],
        bias: &[f32],
        xhat: &mut [f32],
        y: &mut [f32],
        rstd: &mut [f32],
    ) {
        let d = gain.len();
        let keep = !xhat.is_empty();
        for r in 0..rstd.len() {
            let xr = &x[r * d..(r + 1) * d];
            let mean = sum(xr) / d as f32;
            let yr = &mut y[r * d..(r + 1) * d];
            for i in 0..d {
                yr[i] = xr[i] - mean;
            }
            let var = dot(yr, yr) / d as f32;
            let rs = 1.0 / (var + LN_EPS).sqrt();
            rstd[r] = rs;
            for v in yr.iter_mut() {
                *v *= rs;
            }
            if keep {
                xhat[r * d..(r + 1) * d].copy_from_slice(yr);
            }
            for i in 0..d {
                yr[i] = yr[i] * gain[i] + bias[i];
            }
        }
    }
}

/// Row-parallel [`layer_norm_rows`] over `x` (`n x d`). Pass an empty `xhat`
/// to skip keeping it.
pub(crate) fn layer_norm(
    x: &[f32],
    gain: &[f32],
    bias: &[f32],
    xhat: &mut [f32],
    y: &mut [f32],
    rstd: &mut [f32],
) {
    let d = gain.len();
    let c = ROW_CHUNK * d;
    if xhat.is_empty() {
        x.par_chunks(c)
            .zip(y.par_chunks_mut(c))
            .zip(rstd.par_chunks_mut(ROW_CHUNK))
            .with_min_len(min_len())
            .for_each(|((x, y), rs)| layer_norm_rows(x, gain, bias, &mut [], y, rs));
    } else {
        x.par_chunks(c)
            .zip(xhat.par_chunks_mut(c))
            .zip(y.par_chunks_mut(c))
            .zip(rstd.par_chunks_mut(ROW_CHUNK))
            .with_min_len(min_len())
            .for_each(|(((x, xh), y), rs)| layer_norm_rows(x, gain, bias, xh, y, rs));
    }
}

simd! {
    /// Layer-norm backward for a chunk of rows. `dy` is the gradient of the
    /// output; `dx` receives (adds, with `acc`) the input's gradient;
    /// `dgain`/`dbias` receive this chunk's partial sums (overwritten).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_back_rows(
        dy: &[f32],
        xhat: &[f32],
        rstd: &[f32],
        gain: &[f32],
        dx: &mut [f32],
        acc: bool,
        dgain: &mut [f32],
        dbias: &mut [f32],
        tmp: &mut [f32],
    ) {
        let d = gain.len();
        dgain.fill(0.0);
        dbias.fill(0.0);
        for r in 0..rstd.len() {
            let dyr = &dy[r * d..(r + 1) * d];
            let xr = &xhat[r * d..(r + 1) * d];
            for i in 0..d {
                dgain[i] += dyr[i] * xr[i];
                dbias[i] += dyr[i];
                tmp[i] = dyr[i] * gain[i];
            }
            let m1 = sum(tmp) / d as f32;
            let m2 = dot(tmp, xr) / d as f32;
            let rs = rstd[r];
            let dxr = &mut dx[r * d..(r + 1) * d];
            if acc {
                for i in 0..d {
                    dxr[i] += rs * (tmp[i] - m1 - xr[i] * m2);
                }
            } else {
                for i in 0..d {
                    dxr[i] = rs * (tmp[i] - m1 - xr[i] * m2);
                }
            }
        }
    }
}

/// Layer-norm backward over `n x d`: `dx` (+)= the input gradient, and the
/// gain and bias gradients are returned, summed over rows in a fixed order.
pub(crate) fn layer_norm_back(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gain: &[f32],
    dx: &mut [f32],
    acc: bool,
) -> (Vec<f32>, Vec<f32>) {
    let d = gain.len();
    let c = ROW_CHUNK * d;
    let chunks = rstd.len().div_ceil(ROW_CHUNK);
    let mut partial = vec![0.0f32; chunks * 2 * d];
    dy.par_chunks(c)
        .zip(xhat.par_chunks(c))
        .zip(rstd.par_chunks(ROW_CHUNK))
        .zip(dx.par_chunks_mut(c))
        .zip(partial.par_chunks_mut(2 * d))
        .with_min_len(min_len())
        .for_each_init(
            || vec![0.0f32; d],
            |tmp, ((((dy, xh), rs), dx), p)| {
                let (dg, db) = p.split_at_mut(d);
                layer_norm_back_rows(dy, xh, rs, gain, dx, acc, dg, db, tmp);
            },
        );
    let mut dgain = vec![0.0f32; d];
    let mut dbias = vec![0.0f32; d];
    for p in partial.chunks(2 * d) {
        add_assign(&mut dgain, &p[..d]);
        add_assign(&mut dbias, &p[d..]);
    }
    (dgain, dbias)
}

// ---------------------------------------------------------------- element-wise

simd! {
    /// `a += b`.
    pub(crate) fn add_assign(a: &mut [f32], b: &[f32]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x += *y;
        }
    }
}

simd! {
    /// `col[j] = Σ_r x[r][j]` for a chunk of rows (overwrites `col`).
    fn col_sum_rows(x: &[f32], col: &mut [f32]) {
        let d = col.len();
        col.fill(0.0);
        for r in x.chunks_exact(d) {
            for i in 0..d {
                col[i] += r[i];
            }
        }
    }
}

/// Column sums of `x` (`n x d`): a bias gradient.
pub(crate) fn col_sum(x: &[f32], d: usize) -> Vec<f32> {
    let c = ROW_CHUNK * 4 * d;
    let chunks = (x.len() / d).div_ceil(ROW_CHUNK * 4);
    let mut partial = vec![0.0f32; chunks * d];
    x.par_chunks(c)
        .zip(partial.par_chunks_mut(d))
        .with_min_len(min_len())
        .for_each(|(x, p)| col_sum_rows(x, p));
    let mut out = vec![0.0f32; d];
    for p in partial.chunks(d) {
        add_assign(&mut out, p);
    }
    out
}

simd! {
    /// `y = gelu(x)` on the calling thread.
    pub(crate) fn gelu_slice(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = gelu(x);
        }
    }
}

/// d gelu(x) / dx from `x` and `a = gelu(x)`, without an `exp`: with
/// `r = a / x = (1 + tanh u) / 2`, `gelu'(x) = r + a (2 - 2r) u'(x)`
/// (`u = √(2/π)(x + 0.044715 x³)`); near 0, `r ≈ (1 + √(2/π) x) / 2`.
#[inline(always)]
pub(crate) fn gelu_grad_from(x: f32, a: f32) -> f32 {
    let r = if x.abs() > 1e-4 {
        a / x
    } else {
        0.5 + 0.5 * GELU_K0 * x
    };
    r + a * (2.0 - 2.0 * r) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x)
}

simd! {
    /// `dx = dy * gelu'(x)`, in place on `dy`, given `a = gelu(x)`.
    fn gelu_back_slice(x: &[f32], a: &[f32], dy: &mut [f32]) {
        for ((g, &x), &a) in dy.iter_mut().zip(x).zip(a) {
            *g *= gelu_grad_from(x, a);
        }
    }
}

/// Element chunk for parallel element-wise loops.
const ELEM_CHUNK: usize = 8192;

/// `y = gelu(x)`.
pub(crate) fn gelu_forward(x: &[f32], y: &mut [f32]) {
    x.par_chunks(ELEM_CHUNK)
        .zip(y.par_chunks_mut(ELEM_CHUNK))
        .with_min_len(min_len())
        .for_each(|(x, y)| gelu_slice(x, y));
}

/// `dy *= gelu'(x)`, given `a = gelu(x)`.
pub(crate) fn gelu_backward(x: &[f32], a: &[f32], dy: &mut [f32]) {
    x.par_chunks(ELEM_CHUNK)
        .zip(a.par_chunks(ELEM_CHUNK))
        .zip(dy.par_chunks_mut(ELEM_CHUNK))
        .with_min_len(min_len())
        .for_each(|((x, a), dy)| gelu_back_slice(x, a, dy));
}

// ---------------------------------------------------------------- softmax

simd! {
    /// Attention probabilities in place: each row of `s` (`rows x cols`)
    /// becomes `softmax(scale * s + mask)`, `mask` being `rows x cols` too.
    pub(crate) fn masked_softmax(s: &mut [f32], mask: &[f32], scale: f32, cols: usize) {
        for (row, m) in s.chunks_exact_mut(cols).zip(mask.chunks_exact(cols)) {
            for j in 0..cols {
                row[j] = row[j] * scale + m[j];
            }
            let mx = max(row);
            for v in row.iter_mut() {
                *v = exp(*v - mx);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

simd! {
    /// Softmax backward in place: `dp` (gradient w.r.t. the probabilities
    /// `p`, `rows x cols`) becomes the gradient w.r.t. the raw scores before
    /// `scale`: `scale * p * (dp - Σ_j dp_j p_j)`.
    pub(crate) fn softmax_back(p: &[f32], dp: &mut [f32], cols: usize, scale: f32) {
        for (pr, dr) in p.chunks_exact(cols).zip(dp.chunks_exact_mut(cols)) {
            let s = dot(pr, dr);
            for j in 0..cols {
                dr[j] = scale * pr[j] * (dr[j] - s);
            }
        }
    }
}

simd! {
    /// Softmax of each row of `s` (`rows x cols`) in place, with
    /// [`masked_softmax`]'s arithmetic.
    pub(crate) fn softmax_rows(s: &mut [f32], cols: usize) {
        for row in s.chunks_exact_mut(cols) {
            let mx = max(row);
            for v in row.iter_mut() {
                *v = exp(*v - mx);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

simd! {
    /// `scores[hh * t + j] = scale · q_hh · k_j,hh` for every head `hh` and
    /// position `j` of `keys` (`t x d`, position-major); `q` is one row of
    /// `d`, heads side by side.
    pub(crate) fn head_scores(q: &[f32], keys: &[f32], heads: usize, scale: f32, scores: &mut [f32]) {
        let d = q.len();
        let dh = d / heads;
        let t = keys.len() / d;
        for (j, kr) in keys.chunks_exact(d).enumerate() {
            for hh in 0..heads {
                let (c0, c1) = (hh * dh, (hh + 1) * dh);
                scores[hh * t + j] = dot(&q[c0..c1], &kr[c0..c1]) * scale;
            }
        }
    }
}

simd! {
    /// `out[c] = Σ_j p[head(c) * t + j] · values[j][c]` for every column
    /// `c` of `out` (`d`, heads of `d / heads` side by side), summing over
    /// the positions `j` in order.
    pub(crate) fn head_mix(p: &[f32], values: &[f32], heads: usize, out: &mut [f32]) {
        let d = out.len();
        let dh = d / heads;
        let t = values.len() / d;
        out.fill(0.0);
        for (j, vr) in values.chunks_exact(d).enumerate() {
            for hh in 0..heads {
                let (c0, c1) = (hh * dh, (hh + 1) * dh);
                let pj = p[hh * t + j];
                for (o, &v) in out[c0..c1].iter_mut().zip(&vr[c0..c1]) {
                    *o += pj * v;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- loss

simd! {
    /// Per row of `z` (`rows x v` logits): `lse[r] = log Σ_j e^{z_rj}` and
    /// `logp[r] = z[r][y_r] - lse[r]`.
    fn log_softmax_rows(z: &[f32], targets: &[usize], lse: &mut [f32], logp: &mut [f32]) {
        let v = z.len() / lse.len().max(1);
        for (r, row) in z.chunks_exact(v).enumerate() {
            let mx = max(row);
            let mut acc = [0.0f32; 8];
            let mut chunks = row.chunks_exact(8);
            for c in &mut chunks {
                for l in 0..8 {
                    acc[l] += exp(c[l] - mx);
                }
            }
            let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for &x in chunks.remainder() {
                s += exp(x - mx);
            }
            lse[r] = mx + s.ln();
            logp[r] = row[targets[r]] - lse[r];
        }
    }
}

/// Row-parallel [`log_softmax_rows`]: returns `(lse, logp)`, one per row.
pub(crate) fn log_softmax_pick(z: &[f32], targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    let v = z.len() / rows.max(1);
    let (mut lse, mut logp) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    z.par_chunks(ROW_CHUNK * v)
        .zip(targets.par_chunks(ROW_CHUNK))
        .zip(lse.par_chunks_mut(ROW_CHUNK))
        .zip(logp.par_chunks_mut(ROW_CHUNK))
        .with_min_len(min_len())
        .for_each(|(((z, y), lse), lp)| log_softmax_rows(z, y, lse, lp));
    (lse, logp)
}

simd! {
    /// Backward of `Σ_r c_r log softmax(z_r)[y_r]` for a chunk of rows:
    /// `dz[r][j] += c_r ([j = y_r] - softmax_rj)`, `c_r = coef[r]`.
    fn cross_entropy_back_rows(z: &[f32], targets: &[usize], lse: &[f32], coef: &[f32], dz: &mut [f32]) {
        let v = z.len() / lse.len().max(1);
        for (r, (row, drow)) in z.chunks_exact(v).zip(dz.chunks_exact_mut(v)).enumerate() {
            let (c, l) = (coef[r], lse[r]);
            if c == 0.0 {
                continue;
            }
            for j in 0..v {
                drow[j] -= c * exp(row[j] - l);
            }
            drow[targets[r]] += c;
        }
    }
}

/// Row-parallel [`cross_entropy_back_rows`].
pub(crate) fn cross_entropy_backward(
    z: &[f32],
    targets: &[usize],
    lse: &[f32],
    coef: &[f32],
    dz: &mut [f32],
) {
    let v = z.len() / targets.len().max(1);
    z.par_chunks(ROW_CHUNK * v)
        .zip(targets.par_chunks(ROW_CHUNK))
        .zip(lse.par_chunks(ROW_CHUNK))
        .zip(coef.par_chunks(ROW_CHUNK))
        .zip(dz.par_chunks_mut(ROW_CHUNK * v))
        .with_min_len(min_len())
        .for_each(|((((z, y), l), c), dz)| cross_entropy_back_rows(z, y, l, c, dz));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp_and_masks_to_zero() {
        let mut worst = 0.0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp(-1e9), 0.0);
        assert_eq!(exp(-88.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_and_its_gradient_match_the_closed_form() {
        for i in -400..400 {
            let x = i as f32 * 0.02 + if i % 3 == 0 { 3e-5 } else { 0.0 };
            let u =
                (2.0f64 / std::f64::consts::PI).sqrt() * (x as f64 + 0.044715 * (x as f64).powi(3));
            let want = 0.5 * x as f64 * (1.0 + u.tanh());
            assert!((gelu(x) as f64 - want).abs() < 1e-6, "gelu({x})");
            let h = 1e-3f64;
            let g = |x: f64| {
                let u = (2.0f64 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
                0.5 * x * (1.0 + u.tanh())
            };
            let fd = (g(x as f64 + h) - g(x as f64 - h)) / (2.0 * h);
            assert!((gelu_grad(x) as f64 - fd).abs() < 1e-5, "gelu'({x})");
            let from = gelu_grad_from(x, gelu(x)) as f64;
            assert!(
                (from - fd).abs() < 2e-5,
                "gelu'({x}) from gelu(x): {from} vs {fd}"
            );
        }
    }

    fn naive(
        a: &[f32],
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        (ta, tb): (bool, bool),
    ) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    let x = if ta { a[l * m + i] } else { a[i * k + l] };
                    let y = if tb { b[j * k + l] } else { b[l * n + j] };
                    c[i * n + j] += x as f64 * y as f64;
                }
            }
        }
        c
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Every layout and size class (partial tiles, several depth and row
        /// blocks, multi-threaded strips) against an f64 product.
        #[test]
        fn matmul_matches_f64_product(
            m in 1usize..160,
            k in 1usize..1100,
            n in 1usize..70,
            ta: bool,
            tb: bool,
            acc: bool,
            threads in 1usize..3,
            seed: u64,
        ) {
            let mut x = seed | 1;
            let mut rnd = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 1000.0 - 1.0
            };
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rnd()).collect();
            let want = naive(&a, &b, (m, k, n), (ta, tb));
            let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let with_bias = seed % 2 == 0;
            let mut c = c0.clone();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let bias = with_bias.then_some(&bias[..]);
                matmul_bias(&mut c, &a, &b, (m, k, n), (ta, tb), acc, bias)
            });
            for i in 0..m * n {
                let w = want[i]
                    + if acc { c0[i] as f64 } else { 0.0 }
                    + if with_bias { bias[i % n] as f64 } else { 0.0 };
                proptest::prop_assert!(
                    (c[i] as f64 - w).abs() <= 1e-5 * (k as f64).sqrt() + 1e-6,
                    "c[{}] = {} vs {}", i, c[i], w
                );
            }
        }
    }

    #[test]
    fn matmul_transposes_match_a_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut want = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    want[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        let t = |x: &[f32], r: usize, c: usize| {
            let mut o = vec![0.0; r * c];
            for i in 0..r {
                for j in 0..c {
                    o[j * r + i] = x[i * c + j];
                }
            }
            o
        };
        let (at, bt) = (t(&a, m, k), t(&b, k, n));
        for (aa, bb, tr) in [
            (&a, &b, (false, false)),
            (&at, &b, (true, false)),
            (&a, &bt, (false, true)),
            (&at, &bt, (true, true)),
        ] {
            let mut c = vec![1.0f32; m * n];
            matmul(&mut c, aa, bb, (m, k, n), tr, true);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 1.0 - y).abs() < 1e-5, "{tr:?}");
            }
        }
    }
}
