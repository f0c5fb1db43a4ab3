//! The bodies of the fuzz targets (`fuzz/`, run with cargo-fuzz on nightly) — the parsers
//! that read what strangers send — kept here so that `cargo test` on stable replays every
//! file of the seed corpus and of the regressions through exactly the same code (see the test
//! below and SECURITY.md "Fuzzing"). Each function must never panic, whatever the bytes.

use std::time::Duration;

use crate::archive::attachment_text::{Limits, extract_unguarded};
use crate::archive::listing::Cursor;
use crate::archive::parse;
use crate::archive::reading::InlineImages;
use crate::archive::search::tokenize::{Language, chunks, fold};
use crate::archive::search::tsquery::Stemmers;
use crate::archive::search::vector::message_vector;
use crate::archive::search::{query, sql};
use crate::ingest::imap::folders::FolderFilter;
use crate::render::html::{HtmlOptions, sanitize_email_html};
use crate::render::text::text_to_html;

/// One fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("parse_message", parse_message),
    ("sanitize_html", sanitize_html),
    ("search_query", search_query),
    ("attachment_text", attachment_text),
    ("folder_filter", folder_filter),
    ("cursor", cursor),
];

/// A stranger's e-mail as ingest and the reader parse it: the archive's metadata parse, the
/// attachment list, the search vector, and the body/inline-image parse of the body frame.
pub fn parse_message(raw: &[u8]) {
    let parsed = parse::parse(raw);
    let _ = parse::attachments(raw);
    let _ = message_vector(
        &parsed,
        std::slice::from_ref(&parsed.body_text),
        Language::English,
    );
    let images = InlineImages::parse(raw);
    let _ = images.get("a@b");
}

/// An HTML body through the sanitiser (the first byte picks remote images on or off), twice —
/// its own output must sanitise without trouble — and as text through the text renderer.
pub fn sanitize_html(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let options = HtmlOptions {
        message_id: 7,
        load_remote_images: flags & 1 == 1,
    };
    let safe = sanitize_email_html(&text, options);
    let _ = sanitize_email_html(&safe.html, options);
    let _ = text_to_html(&text);
}

/// What a reader types into the search box: the tokenizer, folding, the query parser and the
/// SQL and tsquery built from a parsed query.
pub fn search_query(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let _ = chunks(&input);
    let _ = fold(&input);
    if let Ok(q) = query::parse(&input) {
        let stemmers = Stemmers::new(&[Language::English, Language::German, Language::Simple]);
        let _ = sql::has_full_text(&q);
        let _ = sql::full_text_tsquery(&q, &stemmers);
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT 1 WHERE ");
        sql::push_conditions(&mut qb, &q, &stemmers);
        let _ = qb.sql();
    }
}

const FILE_NAMES: [&str; 9] = [
    "a.pdf", "a.docx", "a.xlsx", "a.pptx", "a.odt", "a.rtf", "a.html", "a.txt", "a.zip",
];

/// An attachment through its text extractor, without the production thread and panic guard
/// so a panic or hang shows. The first byte picks the kind of file.
pub fn attachment_text(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_time: Duration::from_secs(5),
        ..Limits::default()
    };
    let name = FILE_NAMES[usize::from(which) % FILE_NAMES.len()];
    let _ = extract_unguarded(name, bytes, &limits);
}

/// A folder name as a server spells it, then include and exclude patterns (one line each,
/// patterns comma-separated).
pub fn folder_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let folder = lines.next().unwrap_or("");
    let mut patterns = || -> Vec<String> {
        lines
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (include, exclude) = (patterns(), patterns());
    let _ = FolderFilter::new(&include, &exclude).includes(folder);
}

/// A page cursor as it comes back in `after=`: decoded, and verified as a signed one. What
/// decodes must encode to text that decodes to the same cursor.
pub fn cursor(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(c) = Cursor::decode(&text) {
        let again = Cursor::decode(&c.encode());
        assert!(
            again.is_some_and(|a| a.encode() == c.encode()),
            "{c:?} does not survive encode/decode"
        );
    }
    let key = [9u8; 32];
    let _ = Cursor::verify(&text, &key, "user:1 q=x");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::TARGETS;

    /// Every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through its
    /// target: a bounded replay (the corpus is small) that runs with `cargo test` on stable.
    #[test]
    fn the_fuzz_corpus_and_regressions_replay_without_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("corpus entry").path();
                    let data = std::fs::read(&path).expect("read corpus file");
                    let outcome = std::panic::catch_unwind(|| target(&data));
                    assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= 30, "only {replayed} corpus files found");
    }
}
