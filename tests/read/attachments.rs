//! Attachment text: real documents become searchable (`attachment:` and free words) after the
//! background stage; hostile ones are skipped with a reason the message page shows.

use daygle::archive::search::reindex::{self, Scope};
use mail_builder::MessageBuilder;

use super::fixtures::{archive, world};
use super::search::search;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/attachments/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn with_attachments(subject: &str, id: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = MessageBuilder::new()
        .from(("Alice Archer", "alice@example.org"))
        .to("team@example.org")
        .subject(subject)
        .date(1_700_000_000i64)
        .message_id(id)
        .text_body("See the attachments.");
    for (name, ctype) in files {
        b = b.attachment(*ctype, *name, fixture(name));
    }
    b.write_to_vec().expect("build")
}

#[tokio::test]
async fn pdf_and_office_text_is_searchable_and_hostile_files_are_skipped() {
    let w = world().await;
    let ids = archive(
        &w.app,
        w.sales,
        "Docs",
        vec![
            with_attachments(
                "Papers",
                "papers@x",
                &[
                    ("invoice.pdf", "application/pdf"),
                    (
                        "contract.docx",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    ),
                    (
                        "budget.xlsx",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    ),
                    ("minutes.odt", "application/vnd.oasis.opendocument.text"),
                ],
            ),
            with_attachments(
                "Hostile",
                "hostile@x",
                &[
                    ("bomb.docx", "application/octet-stream"),
                    ("loop.pdf", "application/pdf"),
                    ("bundle.zip", "application/zip"),
                ],
            ),
        ],
    )
    .await;
    let [papers, hostile] = ids[..] else { panic!() };
    // Searchable at once by everything but the attachment text, which is pending.
    assert_eq!(search(&w, &w.admin, "Papers").await, vec![papers]);
    assert_eq!(
        search(&w, &w.admin, "quasicrystal").await,
        Vec::<i64>::new()
    );
    let (_, page) = w.app.page(&w.admin, &format!("/messages/{papers}")).await;
    assert!(page.contains("Attachment text pending"), "{page}");
    let (_, page) = w.app.page(&w.admin, "/workers").await;
    assert!(
        page.contains("3 messages waiting for attachment text"),
        "{page}"
    );

    reindex::run(&w.app.pool, Scope::default(), |_| {})
        .await
        .unwrap();
    for (q, expected) in [
        ("quasicrystal", vec![papers]),
        ("brachiosaurus", vec![papers]),
        ("attachment:wolframite", vec![papers]),
        ("attachment:quetzalcoatl", vec![papers]),
        ("zeppelinhangar", vec![hostile, papers]),
        ("attachment:pterodactyl", vec![hostile]),
        ("attachment:Papers", vec![]),
        ("subject:wolframite", vec![]),
    ] {
        let mut found = search(&w, &w.admin, q).await;
        found.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(found, expected, "query: {q}");
    }
    let (_, page) = w.app.page(&w.admin, &format!("/messages/{papers}")).await;
    assert!(!page.contains("Attachment text pending"), "{page}");
    assert!(page.contains("search: text extracted"), "{page}");
    let (_, page) = w.app.page(&w.admin, "/workers").await;
    assert!(page.contains("Search index: up to date"), "{page}");
    let (_, page) = w.app.page(&w.admin, &format!("/messages/{hostile}")).await;
    assert!(page.contains("zip bomb"), "{page}");
    let notes: Vec<String> = sqlx::query_scalar(
        "SELECT text_note FROM attachments WHERE message_id = $1 ORDER BY part_index",
    )
    .bind(hostile)
    .fetch_all(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].starts_with("skipped: unpacks to more than"),
        "{notes:?}"
    );
    assert!(notes[1].starts_with("skipped:"), "{notes:?}");
    assert!(notes[2].starts_with("text extracted"), "{notes:?}");
}
