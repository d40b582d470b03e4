//! Model hyper-parameters.

use serde::{Deserialize, Serialize};

use crate::data::vocab::VOCAB_SIZE;

/// How positions are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PositionKind {
    /// A learned `(max_len, d_model)` table (GPT-2).
    Learned,
    /// The fixed sin/cos table of Vaswani et al.; generalises a little
    /// better to positions rarely seen in training.
    Sinusoidal,
}

/// Size and shape of the decoder-only transformer (`[model]` in a config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Vocabulary size. Fixed by `rewind::data::vocab` (100); only there so a
    /// checkpoint records it. Default 100.
    pub vocab_size: usize,
    /// Width of the residual stream. Must be divisible by `n_heads`. Default 128.
    pub d_model: usize,
    /// Attention heads per layer. Default 4.
    pub n_heads: usize,
    /// Transformer blocks. Default 2.
    pub n_layers: usize,
    /// Hidden width of the feed-forward sub-layer (usually 4 x d_model). Default 512.
    pub d_ff: usize,
    /// Longest sequence (tokens, including `<bos>` and `<eos>`) the model accepts:
    /// the size of the position table. Default 64.
    pub max_len: usize,
    /// Dropout probability on embeddings, attention weights and residual
    /// branches, in [0, 1). Default 0 (small synthetic tasks rarely need it).
    pub dropout: f32,
    /// `learned` or `sinusoidal` position embeddings. Default `learned`.
    pub positions: PositionKind,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            vocab_size: VOCAB_SIZE,
            d_model: 128,
            n_heads: 4,
            n_layers: 2,
            d_ff: 512,
            max_len: 64,
            dropout: 0.0,
            positions: PositionKind::Learned,
        }
    }
}

impl ModelConfig {
    /// Checks ranges; the error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_shape()?;
        if self.vocab_size != VOCAB_SIZE {
            return Err(format!(
                "model.vocab_size = {}: must be {VOCAB_SIZE} (the fixed vocabulary, see rewind::data::vocab)",
                self.vocab_size
            ));
        }
        Ok(())
    }

    /// [`Self::validate`] without the check that `vocab_size` is rewind's
    /// vocabulary (for benchmarks of other sizes).
    pub fn validate_shape(&self) -> Result<(), String> {
        let pos = |v: usize, key: &str| {
            if v == 0 {
                Err(format!("model.{key} = 0: must be at least 1"))
            } else {
                Ok(())
            }
        };
        pos(self.d_model, "d_model")?;
        pos(self.n_heads, "n_heads")?;
        pos(self.n_layers, "n_layers")?;
        pos(self.d_ff, "d_ff")?;
        pos(self.max_len, "max_len")?;
        pos(self.vocab_size, "vocab_size")?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!(
                "model.d_model = {} is not divisible by model.n_heads = {}",
                self.d_model, self.n_heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "model.dropout = {}: allowed range is [0, 1)",
                self.dropout
            ));
        }
        Ok(())
    }
}
