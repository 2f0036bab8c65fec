//! A character-level tokenizer with the special tokens of R1's output format.
//!
//! The vocabulary is tiny and fixed: padding, end-of-sequence, the four tags
//! `<think> </think> <answer> </answer>`, then one token per character the tasks use (digits,
//! operators, a few separators and the lowercase letters). Every token has a text, so decoding
//! and encoding are exact inverses; a character outside the vocabulary is an error, never
//! silently dropped.

use crate::error::{Error, Result};

/// Padding: fills rows of a batch up to a common length; never attended to, never trained on.
pub const PAD: u32 = 0;
/// End of sequence: the model's way to stop. It is an action like any other token.
pub const EOS: u32 = 1;
/// `<think>`: opens the scratchpad.
pub const THINK: u32 = 2;
/// `</think>`: closes the scratchpad.
pub const THINK_END: u32 = 3;
/// `<answer>`: opens the answer.
pub const ANSWER: u32 = 4;
/// `</answer>`: closes the answer.
pub const ANSWER_END: u32 = 5;

// ANCHOR: vocabulary
/// The texts of the special tokens, in id order.
pub const SPECIALS: [&str; 6] = [
    "<pad>",
    "<eos>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
];

/// The ordinary characters, one token each, after the special tokens.
pub const CHARS: &str = "0123456789+-*/=(),.:; \nabcdefghijklmnopqrstuvwxyz";
// ANCHOR_END: vocabulary

/// The tokenizer. It has no state: the vocabulary is fixed, so every checkpoint of every
/// model in the book uses the same ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokenizer;

impl Tokenizer {
    /// Number of distinct tokens.
    pub fn vocab_size(&self) -> usize {
        SPECIALS.len() + CHARS.chars().count()
    }

    /// The text of one token.
    pub fn token_text(&self, id: u32) -> Result<&'static str> {
        let i = id as usize;
        if i < SPECIALS.len() {
            return Ok(SPECIALS[i]);
        }
        let j = i - SPECIALS.len();
        CHARS
            .char_indices()
            .nth(j)
            .map(|(at, c)| &CHARS[at..at + c.len_utf8()])
            .ok_or_else(|| {
                Error::invalid(
                    "token id",
                    format!("{id} is outside the vocabulary of {}", self.vocab_size()),
                )
            })
    }

    /// Turns text into token ids. The special tokens are written as their tags (`<think>`,
    /// `<eos>`, …); any other character must be in [`CHARS`].
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let special = SPECIALS.iter().position(|s| rest.starts_with(s));
                match special {
                    Some(i) => {
                        ids.push(i as u32);
                        rest = &rest[SPECIALS[i].len()..];
                        continue;
                    }
                    None => return Err(unknown(text, rest, c)),
                }
            }
            match CHARS.chars().position(|x| x == c) {
                Some(j) => ids.push((SPECIALS.len() + j) as u32),
                None => return Err(unknown(text, rest, c)),
            }
            rest = &rest[c.len_utf8()..];
        }
        Ok(ids)
    }

    /// Turns token ids back into text, special tokens included: `encode(decode(ids)) == ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut s = String::with_capacity(ids.len());
        for &id in ids {
            s.push_str(self.token_text(id)?);
        }
        Ok(s)
    }

    /// The text of a model's response: everything before the first end-of-sequence, without
    /// padding. Ids outside the vocabulary (which a model cannot produce) are shown as `?`,
    /// so scoring any output never fails.
    pub fn decode_response(&self, ids: &[u32]) -> String {
        ids.iter()
            .take_while(|&&id| id != EOS)
            .filter(|&&id| id != PAD)
            .map(|&id| self.token_text(id).unwrap_or("?"))
            .collect()
    }
}

fn unknown(text: &str, rest: &str, c: char) -> Error {
    let at = text.len() - rest.len();
    Error::invalid(
        "text",
        format!("character {c:?} at byte {at} of {text:?} is not in the tokenizer's vocabulary"),
    )
}
