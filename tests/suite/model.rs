//! The transformer: the attention mask really blocks, positions come from
//! the explicit ids, and checkpoints round-trip exactly.

use dfdx::prelude::*;
use rewind::data::{Batch, Example, MASKED};
use rewind::model::{ModelConfig, PositionKind, Transformer};
use rewind::train::checkpoint::{self, Checkpoint};
use rewind::train::optim::{AdamW, AdamWConfig};
use rewind::train::Backend;

fn tiny(positions: PositionKind) -> ModelConfig {
    ModelConfig {
        d_model: 16,
        n_heads: 2,
        n_layers: 2,
        d_ff: 32,
        max_len: 16,
        positions,
        ..Default::default()
    }
}

fn logits_of(model: &Transformer<Cpu>, _dev: &Cpu, batch: &Batch) -> Vec<f32> {
    Cpu::logits(model, batch)
}

fn row(v: &[f32], seq: usize, vocab: usize, b: usize, i: usize) -> &[f32] {
    &v[(b * seq + i) * vocab..(b * seq + i + 1) * vocab]
}

#[test]
fn causal_mask_hides_future_tokens_but_not_past_ones() {
    let dev: Cpu = Default::default();
    for kind in [PositionKind::Learned, PositionKind::Sinusoidal] {
        let model = Transformer::new(&tiny(kind), &dev, 7).unwrap();
        let batch = Batch::causal(&[Example::prompt_completion(&[20, 21, 22, 23, 24], &[25])]);
        let (s, v) = (batch.seq, 100);
        let base = logits_of(&model, &dev, &batch);
        let mut changed = batch.clone();
        changed.ids[2] = 60;
        let after = logits_of(&model, &dev, &changed);
        // positions 0 and 1 cannot see index 2: bit-identical logits
        assert_eq!(row(&base, s, v, 0, 0), row(&after, s, v, 0, 0));
        assert_eq!(
            row(&base, s, v, 0, 1),
            row(&after, s, v, 0, 1),
            "future token leaked"
        );
        // positions 2 and 3 see it: their logits must change
        assert_ne!(row(&base, s, v, 0, 2), row(&after, s, v, 0, 2));
        assert_ne!(
            row(&base, s, v, 0, 3),
            row(&after, s, v, 0, 3),
            "visible token had no effect"
        );
    }
}

#[test]
fn mask_fully_isolates_a_deleted_token() {
    // Query 4 sees only keys {0, 1, 4}; every key it sees sees only earlier
    // keys among {0, 1}. Changing token 2 or 3 must not move query 4.
    let dev: Cpu = Default::default();
    let model = Transformer::new(&tiny(PositionKind::Learned), &dev, 3).unwrap();
    let mut batch = Batch::causal(&[Example::prompt_completion(&[20, 21, 22, 23, 24], &[])]);
    let s = batch.seq;
    for k in [2, 3] {
        batch.mask[4 * s + k] = MASKED;
    }
    batch.positions[4] = 2; // state [<bos> 20 23]: input 4 (token 23) sits at position 2
    let base = logits_of(&model, &dev, &batch);
    let mut changed = batch.clone();
    changed.ids[2] = 70;
    changed.ids[3] = 71;
    let after = logits_of(&model, &dev, &changed);
    assert_eq!(row(&base, s, 100, 0, 4), row(&after, s, 100, 0, 4));
    // and equals running the model on the 3-token state alone
    let alone = Batch::causal(&[Example {
        tokens: vec![1, 20, 23, 0],
        loss_from: 1,
    }]);
    let solo = logits_of(&model, &dev, &alone);
    let a = row(&base, s, 100, 0, 4);
    let b = row(&solo, alone.seq, 100, 0, 2);
    let max_diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        max_diff < 1e-5,
        "masked pass differs from the state alone by {max_diff}"
    );
}

#[test]
fn position_ids_drive_position_embeddings() {
    let dev: Cpu = Default::default();
    let model = Transformer::new(&tiny(PositionKind::Learned), &dev, 5).unwrap();
    let batch = Batch::causal(&[Example::prompt_completion(&[20, 21], &[22])]);
    let base = logits_of(&model, &dev, &batch);
    let mut shifted = batch.clone();
    shifted.positions[0] = 5;
    let after = logits_of(&model, &dev, &shifted);
    assert_ne!(
        row(&base, batch.seq, 100, 0, 0),
        row(&after, batch.seq, 100, 0, 0)
    );
}

#[test]
fn checkpoint_round_trip_gives_identical_logits_and_optimizer_state() {
    let dev: Cpu = Default::default();
    let model = Transformer::new(&tiny(PositionKind::Learned), &dev, 11).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default(), &model.params());
    // make the moments non-trivial
    let grads: Vec<_> = model
        .params()
        .iter()
        .map(|(_, p)| (*p).clone() * 0.5)
        .collect();
    let mut m2 = model.clone();
    opt.update(m2.params_mut(), &grads, 1e-2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("step".to_string(), "1".to_string());
    checkpoint::save(&path, &m2, Some(&opt), &meta).unwrap();

    let ck = Checkpoint::read(&path).unwrap();
    assert_eq!(ck.meta.get("step").map(String::as_str), Some("1"));
    let loaded = ck.model(&dev).unwrap();
    let batch = Batch::causal(&[Example::prompt_completion(&[20, 21, 22], &[23, 24])]);
    assert_eq!(
        logits_of(&m2, &dev, &batch),
        logits_of(&loaded, &dev, &batch)
    );
    let mut fresh = Transformer::new(&tiny(PositionKind::Learned), &dev, 99).unwrap();
    let mut opt2 = AdamW::new(AdamWConfig::default(), &fresh.params());
    ck.load_into(&mut fresh, Some(&mut opt2)).unwrap();
    assert_eq!(opt2.t, 1);
    for i in 0..opt.m.len() {
        assert_eq!(opt.m[i].as_vec(), opt2.m[i].as_vec());
        assert_eq!(opt.v[i].as_vec(), opt2.v[i].as_vec());
    }
}

#[test]
fn checkpoint_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let e = Checkpoint::read(&missing).err().unwrap();
    assert!(format!("{e:#}").contains("nope.safetensors"));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = Checkpoint::read(&junk).err().unwrap();
    assert!(format!("{e:#}").contains("junk.safetensors"));
}

#[test]
fn bad_model_config_is_rejected_with_key() {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        d_model: 10,
        n_heads: 3,
        ..Default::default()
    };
    let e = Transformer::new(&cfg, &dev, 0).err().unwrap();
    assert!(
        e.contains("model.d_model") && e.contains("model.n_heads"),
        "{e}"
    );
}
