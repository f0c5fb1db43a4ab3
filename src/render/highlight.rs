//! Search matches marked in a snippet: escaped text with `<mark>` around matching words.

use crate::archive::search::tokenize::fold;
use crate::archive::search::{Query, TermKind, TextField};
use crate::render::text::escape_into;

/// `text` escaped for HTML, with each word that one of the query's positive text terms looks
/// for wrapped in `<mark>`.
pub fn highlight(text: &str, query: &Query) -> String {
    let wanted: Vec<String> = query
        .terms()
        .filter(|t| !t.negated)
        .filter_map(|t| match &t.kind {
            TermKind::Word(w) | TermKind::Phrase(w) => Some(w.as_str()),
            TermKind::Field(TextField::Subject | TextField::Body, w) => Some(w.as_str()),
            _ => None,
        })
        .flat_map(words)
        .map(fold)
        .collect();
    let prefixes: Vec<String> = query
        .terms()
        .filter(|t| !t.negated)
        .filter_map(|t| match &t.kind {
            TermKind::Prefix(p) => Some(fold(p)),
            _ => None,
        })
        .collect();
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric())
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next().map(char::len_utf8).unwrap_or(1);
            escape_into(&rest[..c], &mut out);
            rest = &rest[c..];
            continue;
        }
        let word = &rest[..word_len];
        let folded = fold(word);
        if wanted.contains(&folded) || prefixes.iter().any(|p| folded.starts_with(p.as_str())) {
            out.push_str("<mark>");
            escape_into(word, &mut out);
            out.push_str("</mark>");
        } else {
            escape_into(word, &mut out);
        }
        rest = &rest[word_len..];
    }
    out
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::search::parse;

    #[test]
    fn matching_words_are_marked_and_everything_is_escaped() {
        let q = parse("invoice \"Due date\" -spam from:bob").unwrap();
        let html = highlight("Your <b>Invoice</b>: due date is near; spam bob", &q);
        assert_eq!(
            html,
            "Your &lt;b&gt;<mark>Invoice</mark>&lt;/b&gt;: <mark>due</mark> <mark>date</mark> is near; spam bob"
        );
    }
}
