//! The compute device: CPU by default, CUDA with `--features cuda`.
//!
//! All model, loss and training code is generic over `dfdx::tensor_ops::Device<f32>`;
//! only the binary picks a concrete device here.

#[cfg(not(feature = "cuda"))]
pub type Dev = dfdx::tensor::Cpu;
#[cfg(feature = "cuda")]
pub type Dev = dfdx::tensor::Cuda;

/// Human-readable device name recorded in summaries.
#[cfg(not(feature = "cuda"))]
pub const NAME: &str = "cpu";
#[cfg(feature = "cuda")]
pub const NAME: &str = "cuda:0";

/// The default device (GPU 0 for CUDA builds).
pub fn default_device() -> Dev {
    Dev::default()
}
