//! `<bksp>` in one pass: the logits at every state's position of a
//! [`TransitionBatch`] equal the logits of running the model on that state
//! alone, on the fused path and on the composite one.

use dfdx::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rewind::data::vocab::BKSP;
use rewind::data::{backspace::one_pass, TransitionBatch};
use rewind::eval::last_logits_uncached;
use rewind::model::{ModelConfig, Transformer};
use rewind::train::{reference, Backend};

#[test]
fn one_pass_logits_equal_each_state_run_alone() {
    let dev: Cpu = Default::default();
    let cfg = ModelConfig {
        d_model: 32,
        n_heads: 4,
        n_layers: 2,
        d_ff: 64,
        max_len: 40,
        ..Default::default()
    };
    let mut model = Transformer::new(&cfg, &dev, 7).unwrap();
    // larger weights than the init so that a wrong mask shows in the logits
    let mut rng = StdRng::seed_from_u64(3);
    for p in model.params_mut() {
        let v: Vec<f32> = p
            .as_vec()
            .iter()
            .map(|x| x * 8.0 + rng.gen_range(-0.05..0.05))
            .collect();
        *p = dev.tensor_from_vec(v, *p.shape());
    }
    let mut seqs = vec![];
    for _ in 0..4 {
        let prompt: Vec<u32> = (0..rng.gen_range(1..4))
            .map(|_| rng.gen_range(5..90))
            .collect();
        let actions: Vec<u32> = (0..rng.gen_range(3..14))
            .map(|_| {
                if rng.gen_bool(0.35) {
                    BKSP
                } else {
                    rng.gen_range(5..90)
                }
            })
            .collect();
        seqs.push((prompt, actions, rng.gen_bool(0.5)));
    }
    assert!(seqs.iter().any(|s| s.1.contains(&BKSP)));
    let batch = TransitionBatch::new(&seqs);
    let rows = &batch.rows;
    let fused = Cpu::logits(&model, rows);
    let composite = reference::logits(&model, rows);
    let v = cfg.vocab_size;
    let mut checked = 0;
    for (r, (p, a, f)) in seqs.iter().enumerate() {
        let pass = one_pass(p, a, *f);
        let alone = last_logits_uncached(&model, &dev, &pass.states);
        for (i, want) in alone.iter().enumerate() {
            let at = (r * rows.seq + i) * v;
            for (name, got) in [("fused", &fused), ("composite", &composite)] {
                let got = &got[at..at + v];
                let err = got
                    .iter()
                    .zip(want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    err < 1e-4,
                    "{name} row {r} position {i} (state {:?}): max diff {err}",
                    pass.states[i]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20);
}
