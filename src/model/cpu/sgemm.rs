//! Single-precision matmul for x86-64 with AVX2 + FMA: the classic
//! Goto/BLIS structure (pack a `KC x NC` block of B into 16-column panels
//! and an `MC x KC` block of A into 6-row panels, then a 6 x 16 register
//! tile per micro-kernel call: 12 accumulators of 8 lanes).
//!
//! Why not the `gemm` crate that dfdx uses: on this machine's AVX2 cores
//! gemm 0.15 reaches about 2/3 of the FLOP rate PyTorch's BLAS gets on the
//! transformer's shapes, and the matmuls are most of a training step. This
//! kernel gets about the same rate as PyTorch's (see README, Performance).
//! Other CPUs (no AVX2/FMA, or not x86-64) fall back to `gemm`.
//!
//! Several threads split C into column (or row) strips and run the
//! single-threaded algorithm on each, so each strip's arithmetic, and hence
//! the result, does not depend on the thread count.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::kernels::{SendPtr, View};

const MR: usize = 6;
const NR: usize = 16;
/// Depth of a packed block: an A panel (6 x 256) and a B panel (256 x 16)
/// fit in L1 together.
const KC: usize = 256;
/// Rows of a packed A block (fits in L2).
const MC: usize = 144;
/// Columns of a packed B block.
const NC: usize = 2048;

/// Whether this module's kernel can run on this CPU.
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

thread_local! {
    /// Packing buffers, reused across calls on each thread.
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C (m x n, row stride c_rs, unit column stride) [+]= A (m x k) · B (k x n)`.
///
/// # Safety
/// [`available`] must be true; the views and `c` must address valid memory
/// for every index in range, and `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    (m, k, n): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    acc: bool,
    a: View,
    b: View,
    threads: usize,
) {
    let work = m * n * k;
    let parts = if threads > 1 && work >= 64 * 64 * 64 { threads } else { 1 };
    if parts == 1 {
        return sgemm_serial((m, k, n), c, c_rs, acc, a, b);
    }
    let c = SendPtr(c);
    // split the larger of m and n into strips (multiples of the tile size)
    if n >= m && n >= 2 * NR {
        let strip = n.div_ceil(parts).div_ceil(NR) * NR;
        let count = n.div_ceil(strip);
        rayon::scope(|s| {
            for t in 0..count {
                let (j0, j1) = (t * strip, ((t + 1) * strip).min(n));
                s.spawn(move |_| {
                    // (whole values: a closure would capture only the fields)
                    let (a, b, c) = (a, b, c);
                    let bv = View {
                        ptr: b.ptr.wrapping_offset(j0 as isize * b.cs),
                        ..b
                    };
                    sgemm_serial((m, k, j1 - j0), c.0.add(j0), c_rs, acc, a, bv);
                });
            }
        });
    } else {
        let strip = m.div_ceil(parts).div_ceil(MR) * MR;
        let count = m.div_ceil(strip);
        rayon::scope(|s| {
            for t in 0..count {
                let (i0, i1) = (t * strip, ((t + 1) * strip).min(m));
                s.spawn(move |_| {
                    // (whole values: a closure would capture only the fields)
                    let (a, b, c) = (a, b, c);
                    let av = View {
                        ptr: a.ptr.wrapping_offset(i0 as isize * a.rs),
                        ..a
                    };
                    sgemm_serial((i1 - i0, k, n), c.0.offset(i0 as isize * c_rs), c_rs, acc, av, b);
                });
            }
        });
    }
}

/// The single-threaded blocked algorithm.
#[target_feature(enable = "avx2,fma")]
unsafe fn sgemm_serial(
    (m, k, n): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    acc: bool,
    a: View,
    b: View,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                std::slice::from_raw_parts_mut(c.offset(i as isize * c_rs), n).fill(0.0);
            }
        }
        return;
    }
    PACK.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let (pa, pb) = &mut *bufs;
        let need_a = MC.min(m.div_ceil(MR) * MR) * KC.min(k);
        let need_b = NC.min(n.div_ceil(NR) * NR) * KC.min(k);
        if pa.len() < need_a {
            pa.resize(need_a, 0.0);
        }
        if pb.len() < need_b {
            pb.resize(need_b, 0.0);
        }
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let add = acc || pc > 0;
                pack_b(pb, b, pc, kc, jc, nc);
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    pack_a(pa, a, ic, mc, pc, kc);
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        let bp = pb.as_ptr().add(jr * kc);
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let ap = pa.as_ptr().add(ir * kc);
                            let cp = c.offset((ic + ir) as isize * c_rs).add(jc + jr);
                            if mr == MR && nr == NR {
                                kernel_6x16(kc, ap, bp, cp, c_rs, add);
                            } else {
                                let mut tile = [0.0f32; MR * NR];
                                kernel_6x16(kc, ap, bp, tile.as_mut_ptr(), NR as isize, false);
                                for i in 0..mr {
                                    let row = cp.offset(i as isize * c_rs);
                                    for j in 0..nr {
                                        let v = tile[i * NR + j];
                                        *row.add(j) = if add { *row.add(j) + v } else { v };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs `A[ic..ic+mc, pc..pc+kc]` into 6-row panels, each `kc x 6`
/// (k-major), zero-padding the last panel's missing rows.
#[inline(always)]
unsafe fn pack_a(buf: &mut [f32], a: View, ic: usize, mc: usize, pc: usize, kc: usize) {
    for ir in (0..mc).step_by(MR) {
        let mr = MR.min(mc - ir);
        let dst = &mut buf[ir * kc..ir * kc + kc * MR];
        let base = a.ptr.offset((ic + ir) as isize * a.rs + pc as isize * a.cs);
        if mr == MR && a.rs == 1 {
            // A read transposed: the 6 rows of column p are contiguous
            for p in 0..kc {
                let src = base.offset(p as isize * a.cs);
                for i in 0..MR {
                    dst[p * MR + i] = *src.add(i);
                }
            }
        } else {
            for i in 0..MR {
                if i < mr {
                    let src = base.offset(i as isize * a.rs);
                    for p in 0..kc {
                        dst[p * MR + i] = *src.offset(p as isize * a.cs);
                    }
                } else {
                    for p in 0..kc {
                        dst[p * MR + i] = 0.0;
                    }
                }
            }
        }
    }
}

/// Packs `B[pc..pc+kc, jc..jc+nc]` into 16-column panels, each `kc x 16`,
/// zero-padding the last panel's missing columns.
#[inline(always)]
unsafe fn pack_b(buf: &mut [f32], b: View, pc: usize, kc: usize, jc: usize, nc: usize) {
    for jr in (0..nc).step_by(NR) {
        let nr = NR.min(nc - jr);
        let dst = &mut buf[jr * kc..jr * kc + kc * NR];
        let base = b.ptr.offset(pc as isize * b.rs + (jc + jr) as isize * b.cs);
        if nr == NR && b.cs == 1 {
            for p in 0..kc {
                let src = base.offset(p as isize * b.rs);
                dst[p * NR..(p + 1) * NR].copy_from_slice(std::slice::from_raw_parts(src, NR));
            }
        } else {
            for j in 0..NR {
                if j < nr {
                    let src = base.offset(j as isize * b.cs);
                    for p in 0..kc {
                        dst[p * NR + j] = *src.offset(p as isize * b.rs);
                    }
                } else {
                    for p in 0..kc {
                        dst[p * NR + j] = 0.0;
                    }
                }
            }
        }
    }
}

/// `C[0..6, 0..16] (+)= Ap · Bp` over depth `kc`: `ap` is a packed A panel,
/// `bp` a packed B panel.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(kc: usize, ap: *const f32, bp: *const f32, c: *mut f32, c_rs: isize, add: bool) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut ap, mut bp) = (ap, bp);
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        macro_rules! row {
            ($i:expr) => {
                let a = _mm256_broadcast_ss(&*ap.add($i));
                acc[$i][0] = _mm256_fmadd_ps(a, b0, acc[$i][0]);
                acc[$i][1] = _mm256_fmadd_ps(a, b1, acc[$i][1]);
            };
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        row!(4);
        row!(5);
        ap = ap.add(MR);
        bp = bp.add(NR);
    }
    for (i, r) in acc.iter().enumerate() {
        let row = c.offset(i as isize * c_rs);
        let (mut v0, mut v1) = (r[0], r[1]);
        if add {
            v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
            v1 = _mm256_add_ps(_mm256_loadu_ps(row.add(8)), v1);
        }
        _mm256_storeu_ps(row, v0);
        _mm256_storeu_ps(row.add(8), v1);
    }
}
