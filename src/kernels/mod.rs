//! Host (CPU) compute kernels: a packed AVX2/FMA SGEMM, linear layers
//! packed once for products with few rows (decoding), fused row loops
//! (layer norm, GELU, masked softmax, cross-entropy) with their backward
//! passes, and a pool of reusable activation buffers.
//!
//! These know nothing about models: they take slices and shapes. The fused
//! transformer (`model::fused`), the fused losses (`objectives`) and the
//! host AdamW (`train::optim`) are built on them.
//!
//! Threads: every parallel loop runs on the current rayon pool in chunks of
//! fixed size, so results do not depend on the thread count; on a
//! one-thread pool it stays on the calling thread ([`ops::min_len`]).

pub(crate) mod attend;
pub mod ops;
pub mod packed;
pub mod pool;
mod ptr;
mod sgemm;
