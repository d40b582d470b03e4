//! Single-precision matmul for x86-64 with AVX2 + FMA: the classic
//! Goto/BLIS structure (pack a `kc x NC` block of B into 16-column panels
//! and an `mc x kc` block of A into 6-row panels, then a 6 x 16 register
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

use super::ptr::{SendPtr, View};

const MR: usize = 6;
const NR: usize = 16;
/// Deepest packed block. The depth is k split into equal blocks no deeper
/// than this: C is read and written once per block, and for the
/// transformer's shapes (k up to 1024, or 4096 for weight gradients) one or
/// a few passes over C measured fastest; a B panel (kc x 16) then lives in
/// L2 rather than L1, which the 6 x 16 kernel's load rate tolerates.
const KC_MAX: usize = 1024;
/// Bytes of a packed A block (`mc x kc`): about half of the 512 KB L2.
const A_BLOCK_BYTES: usize = 288 * 1024;
/// Most rows of a packed A block.
const MC_MAX: usize = 144;
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

/// `C (m x n, row stride c_rs, unit column stride) [+]= A (m x k) · B (k x n)
/// [+ bias]`, where `bias`, unless null, is a row of `n` added to every row.
///
/// # Safety
/// [`available`] must be true; the views, `c` and `bias` must address valid
/// memory for every index in range, and `c` must not overlap the inputs.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    (m, k, n): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    acc: bool,
    a: View,
    b: View,
    bias: *const f32,
    threads: usize,
) {
    let work = m * n * k;
    let parts = if threads > 1 && work >= 64 * 64 * 64 {
        threads
    } else {
        1
    };
    if parts == 1 {
        return sgemm_serial((m, k, n), c, c_rs, acc, a, b, bias);
    }
    let c = SendPtr(c);
    let bias = View {
        ptr: bias,
        rs: 0,
        cs: 1,
    };
    // split the larger of m and n into strips (multiples of the tile size)
    if n >= m && n >= 2 * NR {
        let strip = n.div_ceil(parts).div_ceil(NR) * NR;
        let count = n.div_ceil(strip);
        rayon::scope(|s| {
            for t in 0..count {
                let (j0, j1) = (t * strip, ((t + 1) * strip).min(n));
                s.spawn(move |_| {
                    // (whole values: a closure would capture only the fields)
                    let (a, b, c, bias) = (a, b, c, bias);
                    let bv = View {
                        ptr: b.ptr.wrapping_offset(j0 as isize * b.cs),
                        ..b
                    };
                    let bias = if bias.ptr.is_null() {
                        bias.ptr
                    } else {
                        bias.ptr.add(j0)
                    };
                    sgemm_serial((m, k, j1 - j0), c.get().add(j0), c_rs, acc, a, bv, bias);
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
                    let (a, b, c, bias) = (a, b, c, bias);
                    let av = View {
                        ptr: a.ptr.wrapping_offset(i0 as isize * a.rs),
                        ..a
                    };
                    let c = c.get().offset(i0 as isize * c_rs);
                    sgemm_serial((i1 - i0, k, n), c, c_rs, acc, av, b, bias.ptr);
                });
            }
        });
    }
}

/// The single-threaded blocked algorithm.
///
/// # Safety
/// As [`sgemm`]: every element addressed through `a`, `b` and `c` (with
/// their strides) is in bounds, `c` is not aliased by another writer, and
/// the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn sgemm_serial(
    (m, k, n): (usize, usize, usize),
    c: *mut f32,
    c_rs: isize,
    acc: bool,
    a: View,
    b: View,
    bias: *const f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            let row = std::slice::from_raw_parts_mut(c.offset(i as isize * c_rs), n);
            if !acc {
                row.fill(0.0);
            }
            if !bias.is_null() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x += *bias.add(j);
                }
            }
        }
        return;
    }
    let kc_step = k.div_ceil(k.div_ceil(KC_MAX));
    let mc_step = (A_BLOCK_BYTES / 4 / kc_step / MR * MR).clamp(MR, MC_MAX);
    PACK.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let (pa, pb) = &mut *bufs;
        let need_a = mc_step.min(m.div_ceil(MR) * MR) * kc_step;
        let need_b = NC.min(n.div_ceil(NR) * NR) * kc_step;
        if pa.len() < need_a {
            pa.resize(need_a, 0.0);
        }
        if pb.len() < need_b {
            pb.resize(need_b, 0.0);
        }
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(kc_step) {
                let kc = kc_step.min(k - pc);
                let add = acc || pc > 0;
                // the bias joins in the first depth block
                let bias = if pc == 0 { bias } else { std::ptr::null() };
                pack_b(pb, b, pc, kc, jc, nc);
                for ic in (0..m).step_by(mc_step) {
                    let mc = mc_step.min(m - ic);
                    pack_a(pa, a, ic, mc, pc, kc);
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        let bp = pb.as_ptr().add(jr * kc);
                        let bias = if bias.is_null() {
                            bias
                        } else {
                            bias.add(jc + jr)
                        };
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let ap = pa.as_ptr().add(ir * kc);
                            let cp = c.offset((ic + ir) as isize * c_rs).add(jc + jr);
                            if mr == MR && nr == NR {
                                kernel_6x16(kc, ap, bp, cp, c_rs, add, bias);
                                continue;
                            }
                            // a partial tile: compute it whole, keep its part
                            let mut tile = [0.0f32; MR * NR];
                            let t = tile.as_mut_ptr();
                            kernel_6x16(kc, ap, bp, t, NR as isize, false, std::ptr::null());
                            for i in 0..mr {
                                let row = cp.offset(i as isize * c_rs);
                                for j in 0..nr {
                                    let mut v = tile[i * NR + j];
                                    if add {
                                        v += *row.add(j);
                                    }
                                    if !bias.is_null() {
                                        v += *bias.add(j);
                                    }
                                    *row.add(j) = v;
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
///
/// # Safety
/// `a` must address every element of that block in bounds; `buf` holds
/// at least `mc.div_ceil(6) * 6 * kc` values.
#[inline(always)]
unsafe fn pack_a(buf: &mut [f32], a: View, ic: usize, mc: usize, pc: usize, kc: usize) {
    let mut done = 0;
    if a.rs == 1 {
        // A read transposed (columns contiguous): stream the source row by
        // row, each row feeding every full panel (sequential reads)
        done = mc / MR * MR;
        let d = buf.as_mut_ptr();
        for p in 0..kc {
            let src = a.ptr.offset(ic as isize + (pc + p) as isize * a.cs);
            for ir in (0..done).step_by(MR) {
                let out = d.add(ir * kc + p * MR);
                _mm_storeu_ps(out, _mm_loadu_ps(src.add(ir)));
                let hi = _mm_loadl_epi64(src.add(ir + 4) as *const __m128i);
                _mm_storel_epi64(out.add(4) as *mut __m128i, hi);
            }
        }
    }
    for ir in (done..mc).step_by(MR) {
        let mr = MR.min(mc - ir);
        let dst = &mut buf[ir * kc..ir * kc + kc * MR];
        let base = a.ptr.offset((ic + ir) as isize * a.rs + pc as isize * a.cs);
        if mr == MR && a.cs == 1 {
            // row-major A: transpose 8 columns of the 6 rows at a time
            let rows: [*const f32; MR] = std::array::from_fn(|i| base.offset(i as isize * a.rs));
            let zero = _mm256_setzero_ps();
            let mut p = 0;
            while p + 8 <= kc {
                let r = [
                    _mm256_loadu_ps(rows[0].add(p)),
                    _mm256_loadu_ps(rows[1].add(p)),
                    _mm256_loadu_ps(rows[2].add(p)),
                    _mm256_loadu_ps(rows[3].add(p)),
                    _mm256_loadu_ps(rows[4].add(p)),
                    _mm256_loadu_ps(rows[5].add(p)),
                    zero,
                    zero,
                ];
                let c = transpose8(r);
                let d = dst.as_mut_ptr().add(p * MR);
                for (q, col) in c.iter().enumerate() {
                    // the 6 valid lanes: 4 + 2
                    let out = d.add(q * MR);
                    _mm_storeu_ps(out, _mm256_castps256_ps128(*col));
                    let hi = _mm_castps_si128(_mm256_extractf128_ps::<1>(*col));
                    _mm_storel_epi64(out.add(4) as *mut __m128i, hi);
                }
                p += 8;
            }
            for p in p..kc {
                for i in 0..MR {
                    dst[p * MR + i] = *rows[i].add(p);
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
///
/// # Safety
/// `b` must address every element of that block in bounds; `buf` holds
/// at least `nc.div_ceil(16) * 16 * kc` values.
#[inline(always)]
unsafe fn pack_b(buf: &mut [f32], b: View, pc: usize, kc: usize, jc: usize, nc: usize) {
    let mut done = 0;
    if b.cs == 1 {
        // row-major B: stream it row by row, each row feeding every full
        // panel (sequential reads; a panel-by-panel walk would stride
        // through memory one cache line per row)
        done = nc / NR * NR;
        let d = buf.as_mut_ptr();
        for p in 0..kc {
            let src = b.ptr.offset((pc + p) as isize * b.rs + jc as isize);
            for jr in (0..done).step_by(NR) {
                let out = d.add(jr * kc + p * NR);
                _mm256_storeu_ps(out, _mm256_loadu_ps(src.add(jr)));
                _mm256_storeu_ps(out.add(8), _mm256_loadu_ps(src.add(jr + 8)));
            }
        }
    }
    for jr in (done..nc).step_by(NR) {
        let nr = NR.min(nc - jr);
        let dst = &mut buf[jr * kc..jr * kc + kc * NR];
        let base = b.ptr.offset(pc as isize * b.rs + (jc + jr) as isize * b.cs);
        if nr == NR && b.rs == 1 {
            // B read transposed: each of the 16 columns is contiguous in p;
            // two 8 x 8 transposes per 8 values of p
            let cols: [*const f32; NR] = std::array::from_fn(|j| base.offset(j as isize * b.cs));
            let mut p = 0;
            while p + 8 <= kc {
                let lo = transpose8(std::array::from_fn(|j| _mm256_loadu_ps(cols[j].add(p))));
                let hi = transpose8(std::array::from_fn(|j| _mm256_loadu_ps(cols[8 + j].add(p))));
                let d = dst.as_mut_ptr().add(p * NR);
                for q in 0..8 {
                    _mm256_storeu_ps(d.add(q * NR), lo[q]);
                    _mm256_storeu_ps(d.add(q * NR + 8), hi[q]);
                }
                p += 8;
            }
            for p in p..kc {
                for j in 0..NR {
                    dst[p * NR + j] = *cols[j].add(p);
                }
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

/// Transpose of the 8 x 8 matrix whose rows are `r`.
///
/// # Safety
/// The CPU must support AVX (callers run under `avx2,fma`).
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// `C[0..6, 0..16] (+)= Ap · Bp (+ bias)` over depth `kc`: `ap` is a packed
/// A panel, `bp` a packed B panel, `bias` (unless null) 16 values added to
/// each row.
///
/// # Safety
/// `ap` holds `6 * kc` values, `bp` `16 * kc`, `bias` (unless null) 16;
/// `c` with row stride `c_rs` addresses the whole 6 x 16 output tile in
/// bounds; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    c_rs: isize,
    add: bool,
    bias: *const f32,
) {
    // the C tile is read after the loop: start fetching it now
    for i in 0..MR {
        let row = c.offset(i as isize * c_rs) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(60));
    }
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
        if !bias.is_null() {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias.add(8)));
        }
        _mm256_storeu_ps(row, v0);
        _mm256_storeu_ps(row.add(8), v1);
    }
}
