//! Raw strided matrix views and a `Send` output pointer: what the SGEMM
//! kernel and the row-parallel loops hand to their tasks.

/// A strided read-only matrix: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// A raw pointer that may cross threads; each task writes a disjoint region.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so that a closure captures the whole `Send`
    /// wrapper rather than its raw-pointer field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used to hand disjoint output regions to parallel tasks.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
// SAFETY: as above; the pointed-to inputs are only read.
unsafe impl Send for View {}
unsafe impl Sync for View {}
