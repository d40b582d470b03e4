//! The parameter table: every trainable tensor of the transformer with its
//! name, shape and initialisation, in one fixed order (llm.c's
//! `ParameterTensors`). This is the only place the order is written: the
//! composite forward pass, the fused CPU path, the cached decoder, AdamW,
//! gradient clipping and checkpoints all find a parameter by its index here.
//!
//! Order: `tok_emb`, `pos_emb` (learned positions only), then per block
//! [`BlockParam::ALL`], then `ln_f.gain`, `ln_f.bias`, `head.weight`,
//! `head.bias`. Names are the checkpoint keys (`blocks.0.wq.weight`).
//!
//! Every parameter is 2-d: vectors (biases, layer-norm gains) are `(1, n)`
//! rows, which keeps the optimiser, clipping and checkpoints one code path.
//! Weights are `(in, out)`, so a layer is `x · W + b`.

use super::{ModelConfig, PositionKind};

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Drawn from N(0, std²) (GPT-2: std 0.02, residual projections scaled by 1/√(2·layers)).
    Normal(f32),
    Zeros,
    Ones,
}

/// One parameter: checkpoint name, shape, initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    /// `(rows, cols)`.
    pub shape: (usize, usize),
    pub init: Init,
}

impl ParamSpec {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.shape.0 * self.shape.1
    }

    /// Whether the parameter is empty (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parameters of one pre-norm block, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockParam {
    Ln1Gain,
    Ln1Bias,
    WqWeight,
    WqBias,
    WkWeight,
    WkBias,
    WvWeight,
    WvBias,
    WoWeight,
    WoBias,
    Ln2Gain,
    Ln2Bias,
    Ff1Weight,
    Ff1Bias,
    Ff2Weight,
    Ff2Bias,
}

impl BlockParam {
    /// Every block parameter, in table order.
    pub const ALL: [BlockParam; 16] = [
        Self::Ln1Gain,
        Self::Ln1Bias,
        Self::WqWeight,
        Self::WqBias,
        Self::WkWeight,
        Self::WkBias,
        Self::WvWeight,
        Self::WvBias,
        Self::WoWeight,
        Self::WoBias,
        Self::Ln2Gain,
        Self::Ln2Bias,
        Self::Ff1Weight,
        Self::Ff1Bias,
        Self::Ff2Weight,
        Self::Ff2Bias,
    ];

    /// Name inside the block (`wq.weight`).
    pub fn name(self) -> &'static str {
        use BlockParam::*;
        match self {
            Ln1Gain => "ln1.gain",
            Ln1Bias => "ln1.bias",
            WqWeight => "wq.weight",
            WqBias => "wq.bias",
            WkWeight => "wk.weight",
            WkBias => "wk.bias",
            WvWeight => "wv.weight",
            WvBias => "wv.bias",
            WoWeight => "wo.weight",
            WoBias => "wo.bias",
            Ln2Gain => "ln2.gain",
            Ln2Bias => "ln2.bias",
            Ff1Weight => "ff1.weight",
            Ff1Bias => "ff1.bias",
            Ff2Weight => "ff2.weight",
            Ff2Bias => "ff2.bias",
        }
    }

    fn spec(self, cfg: &ModelConfig) -> ((usize, usize), Init) {
        use BlockParam::*;
        let (d, f) = (cfg.d_model, cfg.d_ff);
        let std = INIT_STD;
        // residual output projections: scaled so the residual stream's
        // variance does not grow with depth (GPT-2)
        let resid = INIT_STD / (2.0 * cfg.n_layers as f32).sqrt();
        match self {
            Ln1Gain | Ln2Gain => ((1, d), Init::Ones),
            Ln1Bias | Ln2Bias | WqBias | WkBias | WvBias | WoBias | Ff2Bias => {
                ((1, d), Init::Zeros)
            }
            WqWeight | WkWeight | WvWeight => ((d, d), Init::Normal(std)),
            WoWeight => ((d, d), Init::Normal(resid)),
            Ff1Weight => ((d, f), Init::Normal(std)),
            Ff1Bias => ((1, f), Init::Zeros),
            Ff2Weight => ((f, d), Init::Normal(resid)),
        }
    }
}

/// GPT-2's initial weight scale.
pub(crate) const INIT_STD: f32 = 0.02;

/// Block parameters per layer.
const PER_BLOCK: usize = BlockParam::ALL.len();

/// The table of a model config: specs in order, and index lookups.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTable {
    specs: Vec<ParamSpec>,
    learned_positions: bool,
    n_layers: usize,
}

impl ParamTable {
    pub fn new(cfg: &ModelConfig) -> Self {
        let (d, v) = (cfg.d_model, cfg.vocab_size);
        let learned_positions = cfg.positions == PositionKind::Learned;
        let spec = |name: String, shape, init| ParamSpec { name, shape, init };
        let mut specs = vec![spec("tok_emb".into(), (v, d), Init::Normal(INIT_STD))];
        if learned_positions {
            specs.push(spec(
                "pos_emb".into(),
                (cfg.max_len, d),
                Init::Normal(INIT_STD),
            ));
        }
        for l in 0..cfg.n_layers {
            for p in BlockParam::ALL {
                let (shape, init) = p.spec(cfg);
                specs.push(spec(format!("blocks.{l}.{}", p.name()), shape, init));
            }
        }
        specs.push(spec("ln_f.gain".into(), (1, d), Init::Ones));
        specs.push(spec("ln_f.bias".into(), (1, d), Init::Zeros));
        specs.push(spec("head.weight".into(), (d, v), Init::Normal(INIT_STD)));
        specs.push(spec("head.bias".into(), (1, v), Init::Zeros));
        Self {
            specs,
            learned_positions,
            n_layers: cfg.n_layers,
        }
    }

    /// Every parameter, in order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether the table is empty (never).
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Index of the token embedding `(vocab, d)`.
    pub fn tok_emb(&self) -> usize {
        0
    }

    /// Index of the learned position embedding `(max_len, d)`; None for
    /// sinusoidal positions (a fixed table, not a parameter).
    pub fn pos_emb(&self) -> Option<usize> {
        self.learned_positions.then_some(1)
    }

    fn blocks_start(&self) -> usize {
        1 + self.learned_positions as usize
    }

    /// Index of parameter `p` of block `layer`.
    pub fn block(&self, layer: usize, p: BlockParam) -> usize {
        debug_assert!(layer < self.n_layers);
        self.blocks_start() + layer * PER_BLOCK + p as usize
    }

    /// Indices of the final layer norm's gain and bias.
    pub fn ln_f(&self) -> (usize, usize) {
        let i = self.blocks_start() + self.n_layers * PER_BLOCK;
        (i, i + 1)
    }

    /// Indices of the output head's weight `(d, vocab)` and bias.
    pub fn head(&self) -> (usize, usize) {
        let i = self.blocks_start() + self.n_layers * PER_BLOCK + 2;
        (i, i + 1)
    }

    /// Number of transformer blocks.
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_names_for_both_position_kinds() {
        for positions in [PositionKind::Learned, PositionKind::Sinusoidal] {
            let cfg = ModelConfig {
                n_layers: 3,
                positions,
                ..Default::default()
            };
            let t = ParamTable::new(&cfg);
            let name = |i: usize| t.specs()[i].name.as_str();
            assert_eq!(name(t.tok_emb()), "tok_emb");
            assert_eq!(
                t.pos_emb().map(name),
                (positions == PositionKind::Learned).then_some("pos_emb")
            );
            for l in 0..3 {
                for p in BlockParam::ALL {
                    assert_eq!(name(t.block(l, p)), format!("blocks.{l}.{}", p.name()));
                }
            }
            assert_eq!(
                (name(t.ln_f().0), name(t.ln_f().1)),
                ("ln_f.gain", "ln_f.bias")
            );
            assert_eq!(
                (name(t.head().0), name(t.head().1)),
                ("head.weight", "head.bias")
            );
            assert_eq!(t.head().1 + 1, t.len());
        }
    }
}
