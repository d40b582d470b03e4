//! Linear layers packed once for products with a few rows at a time: the
//! key/value-cached decoder (`model::decode`) multiplies the same weight
//! matrices by a handful of rows (one per sequence) at every step.
//!
//! Why not [`super::ops::matmul_bias`]: the general SGEMM packs its right
//! operand on every call, and with a few rows packing a weight matrix costs
//! about as much as the product itself. Here the weights are packed once,
//! into the layout the SGEMM micro-kernel reads (16-column panels, `k x 16`
//! each), and each call only streams them; the rows are read in place (a
//! broadcast per row and depth step needs no packing).
//!
//! Every output element is one fused multiply-add chain over the depth in
//! order, from zero, then `+ residual` (with `acc`), then `+ bias`: the very
//! arithmetic of the SGEMM kernel for depths up to its block depth (1024),
//! so for those the results are bit-identical to
//! [`super::ops::matmul_bias`], and they never depend on how many rows are
//! multiplied together, which rows share a tile, or the thread count.

/// Columns of a packed panel (the SGEMM kernel's `NR`).
const NR: usize = 16;
/// Most rows of a register tile (the SGEMM kernel's `MR`).
#[cfg(target_arch = "x86_64")]
const MR: usize = 6;

/// `y = x · W + b` with `W` (`k x n`, row-major, `(in, out)`) packed into
/// [`NR`]-column panels and `b` padded to whole panels.
#[derive(Clone, Debug)]
pub struct PackedLinear {
    k: usize,
    n: usize,
    /// `n.div_ceil(NR)` panels of `k x NR`: row `p` of panel `j` is
    /// `W[p, j*NR .. (j+1)*NR]`, zero-padded past column `n`.
    panels: Vec<f32>,
    /// `b`, zero-padded to `n.div_ceil(NR) * NR`.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w` (`k x n`, row-major) and `bias` (`n`).
    ///
    /// # Panics
    /// If the lengths do not match `k` and `n`.
    pub fn new(w: &[f32], bias: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedLinear: w is not k x n");
        assert_eq!(bias.len(), n, "PackedLinear: bias is not n long");
        let np = n.div_ceil(NR);
        let mut panels = vec![0.0f32; np * k * NR];
        for (j, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            let (c0, c1) = (j * NR, ((j + 1) * NR).min(n));
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..c1 - c0].copy_from_slice(&w[p * n + c0..p * n + c1]);
            }
        }
        let mut b = vec![0.0f32; np * NR];
        b[..n].copy_from_slice(bias);
        Self {
            k,
            n,
            panels,
            bias: b,
        }
    }

    /// Input width `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `y = x · W + b`, or `y = (y + x · W) + b` with `acc` (a residual
    /// connection), for every row of `x` (`m x k`) and `y` (`m x n`).
    ///
    /// # Panics
    /// If `x` is not a whole number of rows of `k`, or `y` does not have as
    /// many rows of `n`.
    pub fn forward(&self, x: &[f32], y: &mut [f32], acc: bool) {
        let (k, n) = (self.k, self.n);
        assert!(k > 0, "PackedLinear: empty input width");
        assert_eq!(x.len() % k, 0, "PackedLinear: x is not m x k");
        let m = x.len() / k;
        assert_eq!(y.len(), m * n, "PackedLinear: y is not m x n");
        if m == 0 || n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if super::sgemm::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked); `x` and `y` hold
            // `m` whole rows (checked above) and the panels and bias match
            // `k` and `n` by construction.
            unsafe { self.forward_avx2(x, y, m, acc) };
            return;
        }
        self.forward_portable(x, y, acc);
    }

    /// [`PackedLinear::forward`] without SIMD intrinsics: the same order
    /// of operations, multiply and add rounded separately (no FMA), so it
    /// agrees with the AVX2 path to rounding, and is as independent of the
    /// batch.
    fn forward_portable(&self, x: &[f32], y: &mut [f32], acc: bool) {
        let (k, n) = (self.k, self.n);
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            for (j, panel) in self.panels.chunks_exact(k * NR).enumerate() {
                let mut s = [0.0f32; NR];
                for (&a, b) in xr.iter().zip(panel.chunks_exact(NR)) {
                    for l in 0..NR {
                        s[l] += a * b[l];
                    }
                }
                let c0 = j * NR;
                for (l, out) in yr[c0..(c0 + NR).min(n)].iter_mut().enumerate() {
                    let v = if acc { *out + s[l] } else { s[l] };
                    *out = v + self.bias[c0 + l];
                }
            }
        }
    }

    /// The AVX2/FMA path: for each panel (kept in L1 while it is used),
    /// every row tile of up to [`MR`] rows, the rows split into tiles as
    /// evenly as possible (8 rows: 4 + 4, not 6 + 2).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` is `m x k` and `y` `m x n`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&self, x: &[f32], y: &mut [f32], m: usize, acc: bool) {
        let (k, n) = (self.k, self.n);
        let tiles = m.div_ceil(MR);
        let (base, extra) = (m / tiles, m % tiles);
        for (j, panel) in self.panels.chunks_exact(k * NR).enumerate() {
            let c0 = j * NR;
            let cols = NR.min(n - c0);
            let bias = self.bias.as_ptr().add(c0);
            let mut r0 = 0;
            for t in 0..tiles {
                let rows = base + (t < extra) as usize;
                let xp = x.as_ptr().add(r0 * k);
                let yp = y.as_mut_ptr().add(r0 * n + c0);
                let args = (k, xp, panel.as_ptr(), bias, yp, n, cols, acc);
                match rows {
                    1 => tile::<1>(args),
                    2 => tile::<2>(args),
                    3 => tile::<3>(args),
                    4 => tile::<4>(args),
                    5 => tile::<5>(args),
                    _ => tile::<6>(args),
                }
                r0 += rows;
            }
        }
    }
}

/// Arguments of [`tile`]: depth, rows of `x` (row stride = depth), the
/// packed panel, its 16 bias values, the output tile, its row stride, its
/// valid columns, whether to add to the output.
#[cfg(target_arch = "x86_64")]
type TileArgs = (
    usize,
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    usize,
    usize,
    bool,
);

/// `y[0..R, 0..cols] = ((y +) x[0..R] · panel) + bias`: `R x 16` register
/// accumulators, one FMA chain per element over the depth.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x` holds `R` rows of `k`, `panel`
/// `k x 16` values, `bias` 16; `y` with row stride `y_rs` addresses an
/// `R x cols` tile (`cols <= 16`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize>((k, x, panel, bias, y, y_rs, cols, acc): TileArgs) {
    use std::arch::x86_64::*;
    let mut s = [[_mm256_setzero_ps(); 2]; R];
    let mut bp = panel;
    for p in 0..k {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for (i, si) in s.iter_mut().enumerate() {
            let a = _mm256_broadcast_ss(&*x.add(i * k + p));
            si[0] = _mm256_fmadd_ps(a, b0, si[0]);
            si[1] = _mm256_fmadd_ps(a, b1, si[1]);
        }
        bp = bp.add(NR);
    }
    let (bias0, bias1) = (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)));
    for (i, si) in s.iter().enumerate() {
        let row = y.add(i * y_rs);
        if cols == NR {
            let (mut v0, mut v1) = (si[0], si[1]);
            if acc {
                v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
                v1 = _mm256_add_ps(_mm256_loadu_ps(row.add(8)), v1);
            }
            _mm256_storeu_ps(row, _mm256_add_ps(v0, bias0));
            _mm256_storeu_ps(row.add(8), _mm256_add_ps(v1, bias1));
        } else {
            // the last, partial panel: through a buffer, the same operations
            let mut t = [0.0f32; NR];
            _mm256_storeu_ps(t.as_mut_ptr(), si[0]);
            _mm256_storeu_ps(t.as_mut_ptr().add(8), si[1]);
            for (l, &v) in t[..cols].iter().enumerate() {
                let v = if acc { *row.add(l) + v } else { v };
                *row.add(l) = v + *bias.add(l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::ops::matmul_bias;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 9) % 2001) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_sgemm_bit_for_bit_and_does_not_depend_on_the_rows() {
        for (k, n) in [(128, 384), (128, 100), (512, 128), (7, 5), (33, 17)] {
            let w = data(k * n, 1);
            let b = data(n, 2);
            let lin = PackedLinear::new(&w, &b, k, n);
            for m in [1, 2, 4, 7, 8, 13, 32] {
                let x = data(m * k, 3 + m as u32);
                let res = data(m * n, 4);
                for acc in [false, true] {
                    let mut want = res.clone();
                    matmul_bias(&mut want, &x, &w, (m, k, n), (false, false), acc, Some(&b));
                    let mut got = res.clone();
                    lin.forward(&x, &mut got, acc);
                    let mut portable = res.clone();
                    lin.forward_portable(&x, &mut portable, acc);
                    for ((g, w), p) in got.iter().zip(&want).zip(&portable) {
                        // (off x86-64, matmul_bias is the gemm crate)
                        #[cfg(target_arch = "x86_64")]
                        if crate::kernels::sgemm::available() {
                            assert_eq!(g.to_bits(), w.to_bits(), "k {k} n {n} m {m} acc {acc}");
                        }
                        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()));
                        assert!((p - w).abs() <= 1e-4 * (1.0 + w.abs()));
                    }
                    // each row alone gives the same numbers as in the batch
                    for r in 0..m {
                        let mut one = res[r * n..(r + 1) * n].to_vec();
                        lin.forward(&x[r * k..(r + 1) * k], &mut one, acc);
                        assert_eq!(one, got[r * n..(r + 1) * n], "row {r} of {m}");
                    }
                }
            }
        }
    }
}
