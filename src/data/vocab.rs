//! Character-level vocabulary shared by every task.
//!
//! One fixed vocabulary for all tasks keeps token ids stable across
//! experiments, so a model pretrained on one task can be fine-tuned on
//! another and its checkpoints stay comparable (forgetting studies need that).
//!
//! # Token ids (stable; never reorder)
//! | id | token |
//! |----|-------|
//! | 0 | `<pad>` padding, never predicted |
//! | 1 | `<bos>` start of sequence |
//! | 2 | `<eos>` end of sequence (the absorbing "stop" action) |
//! | 3 | `<bksp>` backspace: deletes the last token of the state |
//! | 4 | `'\n'` |
//! | 5 + (c - 32) | printable ASCII `c` in `' '..='~'` (ids 5..=99) |
//!
//! So `'0'` is 21, `'a'` is 70, `'+'` is 16 and `'='` is 34.

use thiserror::Error;

/// Padding token id. Carries no loss and is never attended to.
pub const PAD: u32 = 0;
/// Beginning-of-sequence token id.
pub const BOS: u32 = 1;
/// End-of-sequence token id.
pub const EOS: u32 = 2;
/// Backspace token id (SequenceMatch's `<bksp>` action).
pub const BKSP: u32 = 3;
/// Newline token id.
pub const NEWLINE: u32 = 4;
/// Id of the first printable ASCII character (`' '`).
const FIRST_PRINTABLE: u32 = 5;
/// Number of tokens in the vocabulary.
pub const VOCAB_SIZE: usize = 100;

/// Errors from encoding text.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VocabError {
    #[error("character {ch:?} at byte {pos} of {text:?} is not in the vocabulary (allowed: printable ASCII and '\\n')")]
    UnknownChar { ch: char, pos: usize, text: String },
    #[error("token id {0} is outside the vocabulary (0..{VOCAB_SIZE})")]
    UnknownId(u32),
}

/// Id of one character, if it is in the vocabulary.
pub fn char_id(c: char) -> Option<u32> {
    match c {
        '\n' => Some(NEWLINE),
        ' '..='~' => Some(FIRST_PRINTABLE + (c as u32 - 32)),
        _ => None,
    }
}

/// Encodes text as token ids (no `<bos>`/`<eos>` added).
pub fn encode(text: &str) -> Result<Vec<u32>, VocabError> {
    text.char_indices()
        .map(|(pos, ch)| {
            char_id(ch).ok_or_else(|| VocabError::UnknownChar {
                ch,
                pos,
                text: text.to_string(),
            })
        })
        .collect()
}

/// Printable form of one token: the character itself, or `<name>` for specials.
pub fn token_str(id: u32) -> Result<String, VocabError> {
    Ok(match id {
        PAD => "<pad>".into(),
        BOS => "<bos>".into(),
        EOS => "<eos>".into(),
        BKSP => "<bksp>".into(),
        NEWLINE => "\n".into(),
        id if (id as usize) < VOCAB_SIZE => {
            char::from((id - FIRST_PRINTABLE + 32) as u8).to_string()
        }
        id => return Err(VocabError::UnknownId(id)),
    })
}

/// Decodes ids to text, writing special tokens as `<name>` (backspaces are kept, not applied).
pub fn decode(ids: &[u32]) -> Result<String, VocabError> {
    ids.iter().map(|&id| token_str(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_ids_hold() {
        assert_eq!(char_id('0'), Some(21));
        assert_eq!(char_id('a'), Some(70));
        assert_eq!(char_id('+'), Some(16));
        assert_eq!(char_id('='), Some(34));
        assert_eq!(char_id('~'), Some(VOCAB_SIZE as u32 - 1));
        assert_eq!(char_id('é'), None);
    }

    #[test]
    fn encode_decode_round_trip_on_all_printable() {
        let text: String = (' '..='~').chain(std::iter::once('\n')).collect();
        let ids = encode(&text).unwrap();
        assert_eq!(decode(&ids).unwrap(), text);
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "ids are unique");
    }

    #[test]
    fn unknown_char_is_named() {
        let err = encode("1+é").unwrap_err();
        assert!(err.to_string().contains('é'), "{err}");
        assert!(token_str(100).is_err());
    }
}
