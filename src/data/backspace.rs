//! `<bksp>` in one forward pass (SequenceMatch, Cundy & Ermon 2024).
//!
//! After a prompt, actions `a_1 .. a_T` build states `s_t = apply(s_{t-1}, a_t)`
//! where `<bksp>` deletes the last token (never the prompt) and any other
//! action appends itself. Training needs the model's next-action logits at
//! every state. [`one_pass`] lays the states out as one row so that a
//! single forward pass gives, at every state's position, exactly the logits
//! of running the model on that state alone:
//!
//! - an appended token gets a new position that attends to the tokens of
//!   its state (by their positions in the row) and to itself, with position
//!   id = its index in the state;
//! - a `<bksp>` gets a new position holding a *copy* of the token now last
//!   in the state, at that token's position id, attending to the rest of
//!   the state and to itself. Every key it sees is computed exactly as in
//!   the state alone (a state's tokens form a chain of prefixes), so its
//!   output is the state's. Later tokens attend to the original, not the
//!   copy.
//!
//! E.g. prompt `x1`, actions `x2 e <bksp> x3` give states `[b x1] [b x1 x2]
//! [b x1 x2 e] [b x1 x2] [b x1 x2 x3]` (b = `<bos>`) at row positions 1..=5
//! with ids `b x1 x2 e x2 x3` and position ids `0 1 2 3 2 3`.

use super::batch::{Batch, TransitionBatch, MASKED};
use super::vocab::{BKSP, BOS, EOS, PAD};

/// Applies one action to a state whose first `protected` tokens (the
/// prompt) cannot be deleted. Returns whether the state changed.
pub fn apply(state: &mut Vec<u32>, protected: usize, action: u32) -> bool {
    if action == BKSP {
        if state.len() > protected {
            state.pop();
            return true;
        }
        false
    } else {
        state.push(action);
        true
    }
}

/// One sequence laid out for a single forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnePass {
    /// Input token of each row position.
    pub ids: Vec<u32>,
    /// Position id of each row position (its index in its state).
    pub positions: Vec<usize>,
    /// The row positions each position attends to (ascending, itself last).
    pub visible: Vec<Vec<usize>>,
    /// The action taken from each position's state (`<eos>` after the last
    /// action of a finished sequence; PAD where none follows).
    pub targets: Vec<u32>,
    /// Row position of the state before the first action (the prompt's
    /// last token): targets from here on are actions.
    pub first_action: usize,
    /// The state at each row position (for tests and analysis).
    pub states: Vec<Vec<u32>>,
}

/// Lays out `<bos> prompt` followed by `actions` (see the module docs).
/// With `finished`, the last state's target is `<eos>`.
pub fn one_pass(prompt: &[u32], actions: &[u32], finished: bool) -> OnePass {
    let mut out = OnePass {
        ids: vec![],
        positions: vec![],
        visible: vec![],
        targets: vec![],
        first_action: 0,
        states: vec![],
    };
    // the row position of each token of the current state
    let mut stack: Vec<usize> = vec![];
    let mut state: Vec<u32> = vec![];
    // a new row position: token, position id, the keys it sees besides itself
    let add = |out: &mut OnePass, tok: u32, pos: usize, mut vis: Vec<usize>, state: &[u32]| {
        let at = out.ids.len();
        vis.push(at);
        out.ids.push(tok);
        out.positions.push(pos);
        out.visible.push(vis);
        out.states.push(state.to_vec());
        at
    };
    for &t in std::iter::once(&BOS).chain(prompt) {
        state.push(t);
        let at = add(&mut out, t, stack.len(), stack.clone(), &state);
        stack.push(at);
    }
    let protected = state.len();
    out.first_action = out.ids.len() - 1;
    for &a in actions {
        if apply(&mut state, protected, a) && a == BKSP {
            stack.pop();
        }
        if a == BKSP {
            // a copy of the token now last, seeing the rest of the state
            let last = *stack.last().expect("the prompt is never deleted");
            let (tok, pos) = (out.ids[last], out.positions[last]);
            add(
                &mut out,
                tok,
                pos,
                stack[..stack.len() - 1].to_vec(),
                &state,
            );
        } else {
            let at = add(&mut out, a, stack.len(), stack.clone(), &state);
            stack.push(at);
        }
    }
    out.targets = vec![PAD; out.ids.len()];
    let fa = out.first_action;
    out.targets[fa..fa + actions.len()].copy_from_slice(actions);
    if finished {
        out.targets[fa + actions.len()] = EOS;
    }
    out
}

/// One action sequence for a [`TransitionBatch`]: a prompt, the actions
/// taken after it (`<bksp>` included), whether it ended with `<eos>`, and
/// per action whether it is to be imitated (false for an injected wrong
/// token; ignored for policy rows, which are never imitated).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionSeq {
    pub prompt: Vec<u32>,
    pub actions: Vec<u32>,
    pub finished: bool,
    /// `actions.len()` flags; the final `<eos>` of a finished sequence is
    /// always imitated.
    pub imitate: Vec<bool>,
}

impl ActionSeq {
    /// A sequence whose every action is imitated.
    pub fn clean(prompt: Vec<u32>, actions: Vec<u32>, finished: bool) -> Self {
        let imitate = vec![true; actions.len()];
        Self {
            prompt,
            actions,
            finished,
            imitate,
        }
    }
}

impl TransitionBatch {
    /// Right-padded rows of [`one_pass`] layouts, every action imitated:
    /// `(prompt, actions, finished)` per sequence, all data rows.
    pub fn new(seqs: &[(Vec<u32>, Vec<u32>, bool)]) -> Self {
        let data: Vec<ActionSeq> = seqs
            .iter()
            .map(|(p, a, f)| ActionSeq::clean(p.clone(), a.clone(), *f))
            .collect();
        Self::from_actions(&data, &[])
    }

    /// Data rows then policy rows, each laid out by [`one_pass`] and right-
    /// padded to the longest. `completion` marks every action target (and
    /// `<eos>`); `weights` are 1 on the imitated actions of data rows and 0
    /// elsewhere (prompt, padding, noise, policy rows).
    pub fn from_actions(data: &[ActionSeq], policy: &[ActionSeq]) -> Self {
        let all: Vec<(&ActionSeq, bool)> = data
            .iter()
            .map(|s| (s, false))
            .chain(policy.iter().map(|s| (s, true)))
            .collect();
        let passes: Vec<OnePass> = all
            .iter()
            .map(|(s, _)| one_pass(&s.prompt, &s.actions, s.finished))
            .collect();
        let batch = passes.len();
        let seq = passes.iter().map(|p| p.ids.len()).max().unwrap_or(1).max(1);
        let n = batch * seq;
        let mut b = Batch {
            batch,
            seq,
            ids: vec![PAD as usize; n],
            targets: vec![PAD as usize; n],
            weights: vec![0.0; n],
            completion: vec![false; n],
            positions: vec![0; n],
            mask: vec![MASKED; n * seq],
        };
        for (r, (p, (s, is_policy))) in passes.iter().zip(&all).enumerate() {
            for i in 0..p.ids.len() {
                let at = r * seq + i;
                b.ids[at] = p.ids[i] as usize;
                b.positions[at] = p.positions[i];
                b.targets[at] = p.targets[i] as usize;
                if i >= p.first_action && p.targets[i] != PAD {
                    b.completion[at] = true;
                    let k = i - p.first_action;
                    let imitated = s.imitate.get(k).copied().unwrap_or(true);
                    if !is_policy && imitated {
                        b.weights[at] = 1.0;
                    }
                }
                for &k in &p.visible[i] {
                    b.mask[at * seq + k] = 0.0;
                }
            }
            // padding queries see only themselves (no NaN, never read)
            for i in p.ids.len()..seq {
                b.mask[(r * seq + i) * seq + i] = 0.0;
            }
        }
        Self {
            rows: b,
            policy: all.iter().map(|(_, p)| *p).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example() {
        let (x1, x2, e, x3) = (10, 11, 12, 13);
        let p = one_pass(&[x1], &[x2, e, BKSP, x3], true);
        assert_eq!(p.ids, vec![BOS, x1, x2, e, x2, x3]);
        assert_eq!(p.positions, vec![0, 1, 2, 3, 2, 3]);
        assert_eq!(p.states[4], vec![BOS, x1, x2]);
        assert_eq!(p.states[5], vec![BOS, x1, x2, x3]);
        // the copy sees bos, x1 and itself; x3 sees the original x2, not e
        assert_eq!(p.visible[4], vec![0, 1, 4]);
        assert_eq!(p.visible[5], vec![0, 1, 2, 5]);
        assert_eq!(p.targets, vec![PAD, x2, e, BKSP, x3, EOS]);
        assert_eq!(p.first_action, 1);
    }

    #[test]
    fn backspace_never_deletes_the_prompt() {
        let p = one_pass(&[10], &[BKSP, 11], false);
        assert_eq!(p.states[2], vec![BOS, 10]);
        assert_eq!(p.states[3], vec![BOS, 10, 11]);
        let mut s = vec![BOS, 10];
        assert!(!apply(&mut s, 2, BKSP));
        assert!(apply(&mut s, 2, 11) && apply(&mut s, 2, BKSP));
        assert_eq!(s, vec![BOS, 10]);
    }
}
