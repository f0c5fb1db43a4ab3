//! The search vector of a message, built from [`tokenize::chunks`] and handed to PostgreSQL as
//! the text form of a `tsvector` (`'lexeme':1A,7C …`), bound as a parameter and cast.

use std::collections::HashMap;
use std::fmt::Write;

use rust_stemmers::Stemmer;

use super::tokenize::{self, Language};
use crate::archive::parse::ParsedMessage;

/// Which part of a message a word comes from; ranks subject matches first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weight {
    /// Attachment text.
    D = 0,
    /// Body.
    C = 1,
    /// Addresses and attachment names.
    B = 2,
    /// Subject.
    A = 3,
}

impl Weight {
    pub fn letter(self) -> char {
        match self {
            Weight::A => 'A',
            Weight::B => 'B',
            Weight::C => 'C',
            Weight::D => 'D',
        }
    }
}

/// PostgreSQL keeps positions up to 16383 and at most 256 per lexeme.
const MAX_POSITION: u32 = 16_383;
const MAX_POSITIONS_PER_LEXEME: usize = 256;
/// A tsvector's lexemes must fit in 1 MB; stop adding new ones well before.
const MAX_LEXEME_TOTAL_BYTES: usize = 900 * 1024;

/// The whole search vector of a parsed message: subject (A), addresses and attachment names
/// (B), body (C) and extracted attachment text (D). The one function every insert and every
/// reindex uses, so all rows of an archive are indexed the same way.
pub fn message_vector(
    parsed: &ParsedMessage,
    attachment_text: &[String],
    language: Language,
) -> String {
    let mut v = VectorBuilder::new(language);
    v.add(parsed.subject.as_deref().unwrap_or(""), Weight::A);
    v.add(&parsed.address_text(), Weight::B);
    v.add(&parsed.body_text, Weight::C);
    for text in attachment_text {
        v.add(text, Weight::D);
    }
    v.finish()
}

/// Collects lexemes with their positions and weights.
pub struct VectorBuilder {
    stemmer: Option<Stemmer>,
    lexemes: HashMap<String, Vec<(u32, Weight)>>,
    next_position: u32,
    lexeme_bytes: usize,
}

impl VectorBuilder {
    pub fn new(language: Language) -> Self {
        VectorBuilder {
            stemmer: language.stemmer(),
            lexemes: HashMap::new(),
            next_position: 1,
            lexeme_bytes: 0,
        }
    }

    /// Adds `text` after what was added before. A gap separates texts, so a phrase never
    /// matches across the end of the subject and the start of the body.
    pub fn add(&mut self, text: &str, weight: Weight) {
        for chunk in tokenize::chunks(text) {
            let base = self.next_position;
            for (i, part) in chunk.parts.iter().enumerate() {
                let position = base + i as u32;
                if let Some(stem) = self.stemmer.as_ref().and_then(|s| tokenize::stem(part, s)) {
                    self.put(stem, position, weight);
                }
                self.put(part.text.clone(), position, weight);
            }
            for (start, whole) in chunk.wholes {
                self.put(whole, base + start as u32, weight);
            }
            self.next_position = base.saturating_add(chunk.parts.len() as u32);
        }
        self.next_position = self.next_position.saturating_add(1);
    }

    fn put(&mut self, lexeme: String, position: u32, weight: Weight) {
        let position = position.min(MAX_POSITION);
        if let Some(list) = self.lexemes.get_mut(&lexeme) {
            if list.len() < MAX_POSITIONS_PER_LEXEME && list.last() != Some(&(position, weight)) {
                list.push((position, weight));
            }
            return;
        }
        if self.lexeme_bytes + lexeme.len() > MAX_LEXEME_TOTAL_BYTES {
            return;
        }
        self.lexeme_bytes += lexeme.len();
        self.lexemes.insert(lexeme, vec![(position, weight)]);
    }

    /// The `tsvector` text: `'lexeme':1A,5C …`, quotes and backslashes escaped.
    pub fn finish(self) -> String {
        let mut out = String::with_capacity(self.lexeme_bytes + self.lexemes.len() * 8);
        let mut entries: Vec<_> = self.lexemes.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (lexeme, positions) in entries {
            if !out.is_empty() {
                out.push(' ');
            }
            push_quoted(&mut out, &lexeme);
            for (i, (position, weight)) in positions.iter().enumerate() {
                out.push(if i == 0 { ':' } else { ',' });
                let _ = write!(out, "{position}");
                if *weight != Weight::D {
                    out.push(weight.letter());
                }
            }
        }
        out
    }
}

/// `'text'` with `'` doubled and `\` escaped, as tsvector and tsquery input expect.
pub fn push_quoted(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}
