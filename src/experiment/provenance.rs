//! Provenance recorded with every result: the git commit, versions and
//! thread count that produced it.

/// dfdx version this build uses (from Cargo.lock; recorded in summaries).
pub const DFDX_VERSION: &str = "0.13.0";

/// The git commit this binary was built from (`unknown` outside a repo),
/// with `-dirty` when tracked files had uncommitted changes; recorded by
/// `build.rs` at compile time, so a run that finishes after the checkout
/// moved on still names the code it ran.
pub fn git_commit() -> String {
    env!("REWIND_BUILD_COMMIT").to_string()
}

/// Threads the matmul kernels use (rayon's global pool).
pub fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
