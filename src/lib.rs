//! rewind: a research framework for learning to undo mistakes (SequenceMatch,
//! `<bksp>`) and for fine-tuning on failures without forgetting (UFT).
//!
//! Data flow of one run: `config` -> `tasks` (problems) -> `data` (batches of
//! token ids, loss weights, masks, positions) -> `model` (dfdx transformer)
//! -> `objectives` (losses) -> `train` (stages, optimiser, checkpoints) ->
//! `eval` (exact-match accuracy) -> `results` + `plot`.

pub mod countdown;
pub mod plot;
pub mod tasks;
pub mod vocab;
