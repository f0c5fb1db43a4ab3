//! What the tokenizer makes of text people write. Whether queries then find it is checked
//! against PostgreSQL in tests/read/tokenizer.rs.

use super::*;

/// Every lexeme the index gets for `text`: parts, wholes and (English) stems.
fn lexemes(text: &str) -> Vec<String> {
    let stemmer = Language::English.stemmer();
    let mut out = Vec::new();
    for chunk in chunks(text) {
        for part in &chunk.parts {
            out.push(part.text.clone());
            out.extend(stemmer.as_ref().and_then(|s| stem(part, s)));
        }
        out.extend(chunk.wholes.iter().map(|(_, w)| w.clone()));
    }
    out
}

#[test]
fn compounds_are_split_and_kept_whole() {
    let cases: &[(&str, &[&str])] = &[
        (
            "scoffman@wellpartner.com",
            &[
                "scoffman",
                "wellpartner",
                "com",
                "scoffman@wellpartner.com",
                "wellpartner.com",
            ],
        ),
        (
            "I-D ACTION:draft-ietf-mboned-mix-00.txt",
            &[
                "i",
                "d",
                "i-d",
                "action",
                "draft",
                "ietf",
                "mboned",
                "mix",
                "00",
                "txt",
                "action:draft-ietf-mboned-mix-00.txt",
                "draft-ietf-mboned-mix-00.txt",
            ],
        ),
        (
            "Banned file: auto__mail.python.bat",
            &[
                "banned",
                "ban",
                "file",
                "auto",
                "mail",
                "python",
                "bat",
                "auto__mail.python.bat",
            ],
        ),
        (
            "<https://www.example.com/docs/setup-guide.html>,",
            &[
                "https",
                "www",
                "example",
                "com",
                "docs",
                "setup",
                "guide",
                "html",
                "https://www.example.com/docs/setup-guide.html",
                "www.example.com",
                "setup-guide.html",
            ],
        ),
        ("(2001-04-20)", &["2001", "04", "20", "2001-04-20"]),
    ];
    for (text, expected) in cases {
        assert_eq!(lexemes(text), *expected, "{text}");
    }
}

#[test]
fn case_accents_and_compatibility_forms_fold() {
    for (text, folded) in [
        ("Müller", "muller"),
        ("MÜLLER", "muller"),
        ("ﬁle", "file"),
        ("Straße", "strasse"),
        ("Ørsted", "orsted"),
        ("café", "cafe"),
        ("ＡＢＣ１２３", "abc123"),
        ("Ελληνικά", "ελληνικα"),
        ("don’t", "don't"),
    ] {
        assert_eq!(fold(text), folded, "{text}");
    }
    // Marks that are part of the letter stay.
    assert_eq!(fold("ไทย"), "ไทย");
    assert_eq!(fold("ガ"), "ガ");
}

#[test]
fn word_forms_share_a_stem() {
    let en = Language::English.stemmer().unwrap();
    let stems: Vec<String> = ["invoice", "invoices", "invoicing"]
        .iter()
        .map(|w| {
            let part = &chunks(w)[0].parts[0];
            stem(part, &en).unwrap_or_else(|| part.text.clone())
        })
        .collect();
    assert!(stems.iter().all(|s| *s == stems[0]), "{stems:?}");
    let de = Language::German.stemmer().unwrap();
    let part = &chunks("Rechnungen")[0].parts[0];
    assert_eq!(stem(part, &de).as_deref(), Some("rechnung"));
    // Numbers and mixed tokens are not stemmed.
    assert_eq!(lexemes("1042 a1s"), ["1042", "a1s"]);
}

#[test]
fn unspaced_scripts_become_character_pairs() {
    assert_eq!(
        lexemes("会議の議事録"),
        ["会議", "議の", "の議", "議事", "事録"]
    );
    assert_eq!(lexemes("ภาษา"), ["ภา", "าษ", "ษา"]);
    assert_eq!(lexemes("東"), ["東"]);
    // A script change inside a chunk starts a new part; no whole is kept.
    assert_eq!(lexemes("Tokyo東京"), ["tokyo", "東京"]);
}

#[test]
fn noise_is_dropped_and_nothing_panics() {
    let long = "x".repeat(MAX_LEXEME_BYTES + 1);
    assert!(chunks(&long).is_empty());
    assert!(chunks("... --- @@ // ,,").is_empty());
    assert_eq!(lexemes("-draft."), ["draft"]);
    for text in [
        "",
        "\u{0}",
        "\u{202e}abc",
        "a@",
        "@b",
        "::a::",
        "a..b",
        "ǅ",
        "\u{301}",
    ] {
        let _ = chunks(text);
    }
}

#[test]
fn languages_round_trip_by_name() {
    for l in Language::ALL {
        assert_eq!(Language::parse(l.as_str()), Some(*l));
    }
    assert_eq!(Language::parse(" German "), Some(Language::German));
    assert_eq!(Language::parse("klingon"), None);
}
