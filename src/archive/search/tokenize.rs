//! The one tokenizer: text → chunks of searchable parts. The search vector of every message
//! ([`super::vector`]) and every query ([`super::tsquery`]) are built from [`chunks`], so what
//! is indexed and what is searched cannot disagree.
//!
//! Text is normalised (NFKC), lower-cased and stripped of Latin/Greek/Cyrillic accents. It is
//! cut into *chunks* at whitespace and punctuation that never joins words (`, ; ( ) < > " !`…).
//! A chunk such as `scoffman@wellpartner.com` or `draft-ietf-mboned-mix-00.txt` is split into
//! its *parts* (`scoffman`, `wellpartner`, `com`), which take consecutive positions, and is also
//! kept *whole*, as are its pieces between `@ / : ? # = &` (`wellpartner.com`, a URL's host).
//! Scripts written without spaces (Chinese, Japanese, Thai, …) become overlapping character
//! pairs, so a two-character query finds them.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

/// Parts and whole compounds longer than this are noise (base64 runs, hostile headers);
/// PostgreSQL refuses lexemes over 2047 bytes anyway.
pub const MAX_LEXEME_BYTES: usize = 100;
/// Words shorter than this are not stemmed (their stems would only add collisions).
const MIN_STEM_CHARS: usize = 3;

/// One chunk of text: parts at consecutive positions, and whole compounds, each starting at
/// one of the parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunk {
    pub parts: Vec<Part>,
    /// (index of the part the compound starts at, the compound as written, folded).
    pub wholes: Vec<(usize, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    /// Letters only, long enough: gets a Snowball stem next to its exact form.
    pub stemmable: bool,
}

impl Chunk {
    /// The compound covering the whole chunk, when it has one.
    pub fn whole(&self) -> Option<&str> {
        self.wholes
            .iter()
            .find(|(start, _)| *start == 0)
            .map(|(_, w)| w.as_str())
    }
}

/// The stemming language of an archive account (`accounts.search_language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// No stemming: exact word forms only.
    Simple,
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Turkish,
}

impl Language {
    pub const ALL: &[Language] = &[
        Language::Simple,
        Language::Danish,
        Language::Dutch,
        Language::English,
        Language::Finnish,
        Language::French,
        Language::German,
        Language::Hungarian,
        Language::Italian,
        Language::Norwegian,
        Language::Portuguese,
        Language::Romanian,
        Language::Russian,
        Language::Spanish,
        Language::Swedish,
        Language::Turkish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Simple => "simple",
            Language::Danish => "danish",
            Language::Dutch => "dutch",
            Language::English => "english",
            Language::Finnish => "finnish",
            Language::French => "french",
            Language::German => "german",
            Language::Hungarian => "hungarian",
            Language::Italian => "italian",
            Language::Norwegian => "norwegian",
            Language::Portuguese => "portuguese",
            Language::Romanian => "romanian",
            Language::Russian => "russian",
            Language::Spanish => "spanish",
            Language::Swedish => "swedish",
            Language::Turkish => "turkish",
        }
    }

    /// The language named `name` (case-insensitive), e.g. `german`.
    pub fn parse(name: &str) -> Option<Language> {
        let name = name.trim();
        Language::ALL
            .iter()
            .copied()
            .find(|l| l.as_str().eq_ignore_ascii_case(name))
    }

    /// The Snowball stemmer, None for [`Language::Simple`].
    pub fn stemmer(self) -> Option<Stemmer> {
        let algorithm = match self {
            Language::Simple => return None,
            Language::Danish => Algorithm::Danish,
            Language::Dutch => Algorithm::Dutch,
            Language::English => Algorithm::English,
            Language::Finnish => Algorithm::Finnish,
            Language::French => Algorithm::French,
            Language::German => Algorithm::German,
            Language::Hungarian => Algorithm::Hungarian,
            Language::Italian => Algorithm::Italian,
            Language::Norwegian => Algorithm::Norwegian,
            Language::Portuguese => Algorithm::Portuguese,
            Language::Romanian => Algorithm::Romanian,
            Language::Russian => Algorithm::Russian,
            Language::Spanish => Algorithm::Spanish,
            Language::Swedish => Algorithm::Swedish,
            Language::Turkish => Algorithm::Turkish,
        };
        Some(Stemmer::create(algorithm))
    }
}

/// The stem of `part` when it differs from the part as written.
pub fn stem(part: &Part, stemmer: &Stemmer) -> Option<String> {
    if !part.stemmable {
        return None;
    }
    let stem = stemmer.stem(&part.text);
    (stem != part.text && !stem.is_empty()).then(|| stem.into_owned())
}

/// NFKC, lower case, Latin/Greek/Cyrillic accents removed (`Müller` → `muller`, `ﬁle` →
/// `file`), a few letters that have no decomposition spelled out (`ß` → `ss`, `ø` → `o`).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd().filter(|&c| !is_accent(c)).nfc() {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'Æ' | 'æ' => out.push_str("ae"),
            'Œ' | 'œ' => out.push_str("oe"),
            'Þ' | 'þ' => out.push_str("th"),
            'Ø' | 'ø' => out.push('o'),
            'Ł' | 'ł' => out.push('l'),
            'Đ' | 'đ' => out.push('d'),
            'ı' => out.push('i'),
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => out.push('\''),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Combining accents of alphabets whose readers type without them. Marks that are part of a
/// letter elsewhere (Thai vowels, Devanagari signs, kana voicing) are kept.
fn is_accent(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    /// Scripts written without spaces: indexed as character pairs.
    Unspaced,
    /// Joins parts into a compound inside a chunk: `a.b`, `a-b`, `a_b`.
    WeakJoin,
    /// Joins too, and also separates pieces that are kept whole: `user@host`, `a/b`, `x:y`.
    StrongJoin,
    /// Ends a chunk: whitespace and other punctuation.
    Break,
}

fn class(c: char) -> Class {
    let u = c as u32;
    if matches!(u,
        0x0E00..=0x0EFF          // Thai, Lao
        | 0x1000..=0x109F        // Myanmar
        | 0x1780..=0x17FF        // Khmer
        | 0x2E80..=0x2FDF        // CJK radicals
        | 0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3100..=0x312F        // Bopomofo
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF        // CJK extension A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xF900..=0xFAFF
        | 0x20000..=0x3134F)
    {
        return Class::Unspaced;
    }
    if c.is_alphanumeric() || is_letter_mark(u) {
        return Class::Word;
    }
    match c {
        '.' | '-' | '_' | '+' | '\'' | '~' => Class::WeakJoin,
        '@' | '/' | ':' | '?' | '#' | '=' | '&' | '%' => Class::StrongJoin,
        _ => Class::Break,
    }
}

/// True for a character of a script written without spaces (indexed as character pairs).
pub fn is_unspaced(c: char) -> bool {
    class(c) == Class::Unspaced
}

/// Combining marks that belong inside words of Indic, Hebrew and Arabic script.
fn is_letter_mark(u: u32) -> bool {
    matches!(u, 0x0591..=0x05C7 | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670 | 0x06D6..=0x06ED | 0x0900..=0x0DFF)
}

/// The chunks of `text`, in order. Folds the text first.
pub fn chunks(text: &str) -> Vec<Chunk> {
    let folded = fold(text);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in folded.char_indices() {
        match (class(c), start) {
            (Class::Break, Some(s)) => {
                out.extend(chunk(&folded[s..i]));
                start = None;
            }
            (Class::Break, None) => {}
            (_, None) => start = Some(i),
            (_, Some(_)) => {}
        }
    }
    if let Some(s) = start {
        out.extend(chunk(&folded[s..]));
    }
    out
}

/// One run of non-break characters (already folded) as a chunk; None when it holds no word.
fn chunk(raw: &str) -> Option<Chunk> {
    let text = raw.trim_matches(|c| matches!(class(c), Class::WeakJoin | Class::StrongJoin));
    let mut parts = Vec::new();
    // Byte offset in `text` where each part starts, to cut out whole pieces.
    let mut starts = Vec::new();
    let mut has_unspaced = false;
    let mut run: Option<(usize, Class)> = None;
    let mut flush = |run: Option<(usize, Class)>, end: usize, parts: &mut Vec<Part>| {
        let Some((s, kind)) = run else { return };
        let word = &text[s..end];
        if kind == Class::Unspaced {
            push_pairs(word, s, parts, &mut starts);
        } else if word.len() <= MAX_LEXEME_BYTES {
            starts.push(s);
            parts.push(Part {
                text: word.to_string(),
                stemmable: word.chars().count() >= MIN_STEM_CHARS
                    && word.chars().all(char::is_alphabetic),
            });
        }
    };
    for (i, c) in text.char_indices() {
        let k = class(c);
        has_unspaced |= k == Class::Unspaced;
        match (k, run) {
            (Class::Word | Class::Unspaced, Some((_, r))) if r == k => {}
            (Class::Word | Class::Unspaced, _) => {
                flush(run, i, &mut parts);
                run = Some((i, k));
            }
            _ => {
                flush(run, i, &mut parts);
                run = None;
            }
        }
    }
    flush(run, text.len(), &mut parts);
    if parts.is_empty() {
        return None;
    }
    if text.contains(|c: char| matches!(c, '.' | '_' | '+' | '~') || class(c) == Class::StrongJoin)
    {
        // Addresses, hosts, file names, URLs: their parts are names, not words with forms.
        parts.iter_mut().for_each(|p| p.stemmable = false);
    }
    let mut wholes = Vec::new();
    if parts.len() > 1 && !has_unspaced {
        if text.len() <= MAX_LEXEME_BYTES {
            wholes.push((0, text.to_string()));
        }
        // Pieces between strong joiners: the domain of an address, the host of a URL.
        let mut offset = 0;
        for piece in text.split(|c| class(c) == Class::StrongJoin) {
            let trimmed = piece.trim_matches(|c| class(c) == Class::WeakJoin);
            let at = offset
                + (piece.len()
                    - piece
                        .trim_start_matches(|c| class(c) == Class::WeakJoin)
                        .len());
            offset += piece.len() + 1;
            if trimmed.len() == text.len() || trimmed.len() > MAX_LEXEME_BYTES {
                continue;
            }
            let first = starts.iter().position(|&s| s >= at);
            let inside = starts
                .iter()
                .filter(|&&s| s >= at && s < at + trimmed.len())
                .count();
            if let (Some(first), true) = (first, inside > 1) {
                wholes.push((first, trimmed.to_string()));
            }
        }
    }
    Some(Chunk { parts, wholes })
}

/// Overlapping character pairs of a run of unspaced script (a single character alone).
fn push_pairs(run: &str, offset: usize, parts: &mut Vec<Part>, starts: &mut Vec<usize>) {
    let chars: Vec<(usize, char)> = run.char_indices().collect();
    if chars.len() == 1 {
        starts.push(offset);
        parts.push(Part {
            text: run.to_string(),
            stemmable: false,
        });
        return;
    }
    for pair in chars.windows(2) {
        starts.push(offset + pair[0].0);
        parts.push(Part {
            text: [pair[0].1, pair[1].1].iter().collect(),
            stemmable: false,
        });
    }
}

#[cfg(test)]
#[path = "tokenize_tests.rs"]
mod tests;
