//! The tokenizer's promises, checked in PostgreSQL: text indexed by `VectorBuilder` and a query
//! turned into a tsquery by the same tokenizer, matched with `@@`.

use daygle::archive::search::sql::full_text_tsquery;
use daygle::archive::search::vector::{VectorBuilder, Weight};
use daygle::archive::search::{Language, Stemmers, parse};

async fn matches(pool: &sqlx::PgPool, language: Language, text: &str, query: &str) -> bool {
    let mut v = VectorBuilder::new(language);
    v.add(text, Weight::C);
    let Some(q) = full_text_tsquery(&parse(query).unwrap(), &Stemmers::new(&[language])) else {
        return false;
    };
    sqlx::query_scalar("SELECT $1::tsvector @@ $2::tsquery")
        .bind(v.finish())
        .bind(&q)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{text} / {query} ({q}): {e}"))
}

#[tokio::test]
async fn what_people_type_finds_what_was_written() {
    let app = crate::common::spawn_app().await;
    use Language::*;
    let cases: &[(Language, &str, &str, bool)] = &[
        // Parts of compounds, and the compounds whole.
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "mboned",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "ietf",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "draft-ietf-mboned",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "draft-ietf-mboned-mix-00.txt",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "ACTION:draft-ietf-mboned-mix-00.txt",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "I-D",
            true,
        ),
        (
            English,
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            "ietf-draft",
            false,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "wellpartner",
            true,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "wellpartner.com",
            true,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "scoffman",
            true,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "scoffman@wellpartner.com",
            true,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "<scoffman@wellpartner.com>",
            true,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "partner",
            false,
        ),
        (
            English,
            "from scoffman@wellpartner.com today",
            "other@wellpartner.com",
            false,
        ),
        (
            English,
            "Banned file: auto__mail.python.bat",
            "\"Banned file auto mail python bat\"",
            true,
        ),
        (
            English,
            "Banned file: auto__mail.python.bat",
            "python",
            true,
        ),
        (English, "Banned file: auto__mail.python.bat", "bat", true),
        (English, "Banned file: auto__mail.python.bat", "auto", true),
        (
            English,
            "Banned file: auto__mail.python.bat",
            "auto__mail.python.bat",
            true,
        ),
        (
            English,
            "Banned file: auto__mail.python.bat",
            "\"python banned\"",
            false,
        ),
        (
            English,
            "see https://www.example.com/docs/setup-guide.html",
            "www.example.com",
            true,
        ),
        (
            English,
            "see https://www.example.com/docs/setup-guide.html",
            "example",
            true,
        ),
        (
            English,
            "see https://www.example.com/docs/setup-guide.html",
            "setup",
            true,
        ),
        (
            English,
            "see https://www.example.com/docs/setup-guide.html",
            "setup-guide.html",
            true,
        ),
        (
            English,
            "see https://www.example.com/docs/setup-guide.html",
            "example.com",
            true,
        ),
        (English, "released 2001-04-20 at noon", "2001-04-20", true),
        (English, "released 2001-04-20 at noon", "2001-04-21", false),
        // Word forms; a quoted phrase matches as written.
        (English, "Two invoices attached", "invoice", true),
        (English, "Two invoices attached", "invoicing", true),
        (English, "Two invoices attached", "INVOICES", true),
        (English, "Two invoices attached", "\"invoice\"", false),
        (
            English,
            "Two invoices attached",
            "\"invoices attached\"",
            true,
        ),
        (English, "invoicing run", "invoices", true),
        (German, "Die Rechnungen sind bezahlt", "Rechnung", true),
        (Simple, "Two invoices attached", "invoice", false),
        // Case, accents, Unicode compatibility forms.
        (English, "Herr Müller schreibt", "muller", true),
        (English, "Herr Müller schreibt", "Muller", true),
        (English, "Herr Müller schreibt", "MÜLLER", true),
        (English, "Herr Muller schreibt", "Müller", true),
        (English, "the ﬁle is here", "file", true),
        (English, "the file is here", "ﬁle", true),
        (English, "Straße", "strasse", true),
        // Prefixes.
        (English, "Two invoices attached", "invoic*", true),
        (English, "invoicing run", "inv*", true),
        (English, "invoicing run", "invo*ce", false),
        (English, "see www.example.com", "www.exam*", true),
        // Scripts without spaces.
        (English, "会議の議事録を送ります", "議事録", true),
        (English, "会議の議事録を送ります", "議事", true),
        (English, "会議の議事録を送ります", "会議", true),
        (English, "会議の議事録を送ります", "報告", false),
        (English, "我们明天开会", "开会", true),
        (English, "我们明天开会", "明天开会", true),
        (English, "我们明天开会", "明", true),
        (English, "ภาษาไทยง่าย", "ไทย", true),
        // Operators over text.
        (English, "alpha beta", "alpha -beta", false),
        (English, "alpha beta", "alpha -gamma", true),
        (English, "alpha beta", "gamma OR beta", true),
        (English, "alpha beta", "alpha gamma", false),
        (English, "it's o'brien's turn", "o'brien's", true),
        (English, "quote 'it' \\ back", "\\", false),
    ];
    let mut failures = Vec::new();
    for (language, text, query, expected) in cases {
        if matches(&app.pool, *language, text, query).await != *expected {
            failures.push(format!(
                "{language:?} {text:?} / {query:?}: expected {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
