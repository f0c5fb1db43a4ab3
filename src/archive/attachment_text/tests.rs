//! Real documents (made by python-docx, openpyxl, python-pptx, odfpy and fpdf2; see
//! tests/fixtures/attachments/make.py) and hostile ones.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/attachments/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read(name: &str) -> Outcome {
    let k = kind(Some(name), None).expect("a supported kind");
    extract(k, fixture(name), &Limits::default())
}

#[test]
fn text_comes_out_of_every_supported_kind() {
    for (name, words) in [
        ("contract.docx", &["wolframite", "1200 EUR"][..]),
        ("budget.xlsx", &["Quetzalcoatl consulting"]),
        ("roadmap.pptx", &["xylophonist", "Roadmap 2025"]),
        ("minutes.odt", &["zeppelinhangar"]),
        ("invoice.pdf", &["quasicrystal", "brachiosaurus"]),
        ("letter.rtf", &["marzipanfactory", "Café naïve"]),
        ("bundle.zip", &["pterodactyl", "zeppelinhangar"]),
    ] {
        let Outcome::Text(text) = read(name) else {
            panic!("{name}: {:?}", read(name));
        };
        for w in words {
            assert!(text.contains(w), "{name}: {w:?} not in {text:?}");
        }
    }
    let Outcome::Text(rtf) = read("letter.rtf") else {
        panic!()
    };
    assert!(!rtf.contains("Times") && !rtf.contains("Hand"), "{rtf}");
    let html = extract(
        Kind::Html,
        b"<p>Hello <b>lunar</b>&amp;tide</p>".to_vec(),
        &Limits::default(),
    );
    assert!(matches!(html, Outcome::Text(t) if t.contains("lunar") && t.contains("&tide")));
}

#[test]
fn hostile_files_are_skipped_with_a_reason() {
    for (name, reason) in [
        ("bomb.docx", "zip bomb"),
        ("loop.pdf", ""),
        ("truncated.pdf", "malformed"),
        // pdf-extract panics on a page without /MediaBox (a fuzzing finding): the extraction
        // thread's guard turns it into a skip.
        ("nomediabox.pdf", "its reader gave up"),
    ] {
        match read(name) {
            Outcome::Skipped(r) => assert!(r.contains(reason), "{name}: {r}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Malformed XML keeps the text read before the damage.
    assert!(matches!(read("broken.docx"), Outcome::Text(t) if t.trim() == "unclosed"));
    assert!(matches!(
        extract(Kind::Word, b"PK\x03\x04 not really".to_vec(), &Limits::default()),
        Outcome::Skipped(r) if r.contains("zip")
    ));
    let small = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(
        extract(Kind::Pdf, fixture("invoice.pdf"), &small),
        Outcome::Skipped(r) if r.contains("larger than")
    ));
    let no_time = Limits {
        max_time: Duration::ZERO,
        ..Limits::default()
    };
    assert!(matches!(
        extract(Kind::Word, fixture("contract.docx"), &no_time),
        Outcome::Skipped(r) if r.contains("took")
    ));
    assert!(matches!(
        extract(Kind::Pdf, b"GIF89a".to_vec(), &Limits::default()),
        Outcome::Skipped(r) if r.contains("not a PDF")
    ));
}

#[test]
fn text_is_capped_and_kinds_are_recognised() {
    let tiny = Limits {
        max_text_bytes: 10,
        ..Limits::default()
    };
    let text = "é".repeat(100);
    match extract(Kind::Text, text.into_bytes(), &tiny) {
        Outcome::Text(t) => assert!(t.len() <= 10 && t.chars().all(|c| c == 'é')),
        other => panic!("{other:?}"),
    }
    assert!(may_have_text(Some("Q3 figures.XLSX"), None));
    assert!(may_have_text(None, Some("application/pdf")));
    assert!(may_have_text(Some("noext"), Some("text/csv")));
    assert!(!may_have_text(Some("photo.jpg"), Some("image/jpeg")));
    assert!(!may_have_text(None, None));
}
