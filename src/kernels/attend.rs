//! Attention of one query over cached keys and values: a decoding step of
//! the key/value-cached decoder (`model::decode`), one row at a time.
//!
//! Keys and values are `t x d`, position-major (every head of a position
//! side by side): the layout a cache that grows and shrinks by whole
//! positions keeps. Both are read once, position by position with every
//! head at a time, a sequential stream the prefetcher follows: a batch of
//! long states keeps its caches in L3 or memory, not L1, and walking one
//! head's columns down the positions instead misses at every position.
//!
//! On x86-64 with AVX2 + FMA and a head width that is a multiple of 8, the
//! scores and the weighted sum of the values are written with intrinsics
//! (the compiler's vectorisation of the per-head dot products reduced
//! lanes one shuffle at a time); elsewhere the portable loops of
//! [`super::ops`] run. A row's result depends only on its own inputs: the
//! sums run in a fixed order.

use super::ops::{head_mix, head_scores, softmax_rows};

/// Multi-head attention of one query over `t` positions: per head `hh`,
/// `out_hh = softmax(scale · q_hh · K_hhᵀ) · V_hh`. `q` and `out` are one
/// row of `d` (heads side by side); `keys` and `values` are `t x d`;
/// `scores` holds at least `heads * t` values (overwritten: afterwards the
/// attention probabilities, head-major).
///
/// # Panics
/// If the shapes disagree.
pub(crate) fn attend_one(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    heads: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    assert!(
        heads > 0 && d.is_multiple_of(heads),
        "attend_one: d % heads != 0"
    );
    assert_eq!(out.len(), d, "attend_one: out is not one row");
    assert_eq!(keys.len() % d, 0, "attend_one: keys are not t x d");
    assert_eq!(
        keys.len(),
        values.len(),
        "attend_one: keys and values differ"
    );
    let t = keys.len() / d;
    assert!(t > 0, "attend_one: no position to attend to");
    let scores = &mut scores[..heads * t];
    #[cfg(target_arch = "x86_64")]
    if (d / heads).is_multiple_of(8) && super::sgemm::available() {
        // SAFETY: the CPU has AVX2 and FMA (checked); the shapes are
        // checked above and the head width is a multiple of 8.
        unsafe {
            avx2::scores(q, keys, values, heads, scale, scores);
            softmax_rows(scores, t);
            avx2::mix(scores, values, heads, out);
        }
        return;
    }
    head_scores(q, keys, heads, scale, scores);
    softmax_rows(scores, t);
    head_mix(scores, values, heads, out);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes of `v`.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
    }

    /// [`super::head_scores`]: per position and head, one FMA chain over
    /// the head's 8-lane blocks, then the lanes summed. The values of each
    /// position are prefetched meanwhile, for [`mix`]: a batch of long
    /// states keeps its caches in memory, and two streams in flight instead
    /// of one get more of its bandwidth.
    ///
    /// # Safety
    /// AVX2 + FMA; `q` is `d` long with `d / heads` a multiple of 8, `keys`
    /// and `values` `t x d`, `scores` `heads * t`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        heads: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let d = q.len();
        let (dh, t) = (d / heads, keys.len() / d);
        let (qp, sp) = (q.as_ptr(), scores.as_mut_ptr());
        for j in 0..t {
            let kp = keys.as_ptr().add(j * d);
            let vp = values.as_ptr().add(j * d) as *const i8;
            // a hint only: it never faults, and every line is in the row
            for line in (0..d * 4).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(vp.add(line));
            }
            for hh in 0..heads {
                let c0 = hh * dh;
                let mut acc =
                    _mm256_mul_ps(_mm256_loadu_ps(qp.add(c0)), _mm256_loadu_ps(kp.add(c0)));
                for c in (c0 + 8..c0 + dh).step_by(8) {
                    acc = _mm256_fmadd_ps(
                        _mm256_loadu_ps(qp.add(c)),
                        _mm256_loadu_ps(kp.add(c)),
                        acc,
                    );
                }
                *sp.add(hh * t + j) = hsum(acc) * scale;
            }
        }
    }

    /// [`super::head_mix`]: `out` in blocks of up to 64 columns, each block
    /// accumulated in registers over every position (one FMA chain per
    /// element, positions in order).
    ///
    /// # Safety
    /// AVX2 + FMA; `out` is `d` long with `d / heads` a multiple of 8,
    /// `values` `t x d`, `p` `heads * t`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mix(p: &[f32], values: &[f32], heads: usize, out: &mut [f32]) {
        let d = out.len();
        let dh = d / heads;
        let mut c0 = 0;
        while c0 < d {
            let nv = ((d - c0) / 8).min(8);
            let args = (p, values, dh, c0, &mut *out);
            match nv {
                1 => block::<1>(args),
                2 => block::<2>(args),
                3 => block::<3>(args),
                4 => block::<4>(args),
                5 => block::<5>(args),
                6 => block::<6>(args),
                7 => block::<7>(args),
                _ => block::<8>(args),
            }
            c0 += nv * 8;
        }
    }

    /// Columns `c0 .. c0 + 8 * V` of [`mix`].
    ///
    /// # Safety
    /// As [`mix`], and `c0 + 8 * V <= d`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const V: usize>(
        (p, values, dh, c0, out): (&[f32], &[f32], usize, usize, &mut [f32]),
    ) {
        let d = out.len();
        let t = values.len() / d;
        // where each 8-lane block's head probabilities start
        let heads: [*const f32; V] = std::array::from_fn(|v| p.as_ptr().add((c0 + 8 * v) / dh * t));
        let mut acc = [_mm256_setzero_ps(); V];
        let mut vp = values.as_ptr().add(c0);
        for j in 0..t {
            for v in 0..V {
                let pj = _mm256_broadcast_ss(&*heads[v].add(j));
                acc[v] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vp.add(8 * v)), acc[v]);
            }
            vp = vp.add(d);
        }
        for (v, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * v), *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed.wrapping_mul(40503));
                ((h >> 9) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Attention in f64, head by head.
    fn naive(q: &[f32], k: &[f32], v: &[f32], heads: usize, scale: f32) -> Vec<f64> {
        let d = q.len();
        let (dh, t) = (d / heads, k.len() / d);
        let mut out = vec![0.0f64; d];
        for hh in 0..heads {
            let s: Vec<f64> = (0..t)
                .map(|j| {
                    (0..dh)
                        .map(|i| q[hh * dh + i] as f64 * k[j * d + hh * dh + i] as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let tot: f64 = e.iter().sum();
            for (j, ej) in e.iter().enumerate() {
                for i in 0..dh {
                    out[hh * dh + i] += ej / tot * v[j * d + hh * dh + i] as f64;
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_attention_in_both_paths() {
        for (d, heads) in [(128, 4), (64, 1), (24, 3), (20, 4), (256, 2)] {
            for t in [1, 2, 7, 33] {
                let q = data(d, 1);
                let k = data(t * d, 2);
                let v = data(t * d, 3);
                let scale = 1.0 / ((d / heads) as f32).sqrt();
                let want = naive(&q, &k, &v, heads, scale);
                let mut s = vec![0.0; heads * t];
                let mut out = vec![0.0; d];
                attend_one(&q, &k, &v, heads, scale, &mut s, &mut out);
                let mut out2 = vec![0.0; d];
                head_scores(&q, &k, heads, scale, &mut s);
                softmax_rows(&mut s, t);
                head_mix(&s, &v, heads, &mut out2);
                for ((a, b), w) in out.iter().zip(&out2).zip(&want) {
                    assert!(
                        (*a as f64 - w).abs() < 1e-5,
                        "d {d} heads {heads} t {t}: {a} vs {w}"
                    );
                    assert!(
                        (*b as f64 - w).abs() < 1e-5,
                        "d {d} heads {heads} t {t}: {b} vs {w}"
                    );
                }
            }
        }
    }
}
