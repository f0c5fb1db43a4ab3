//! `daygle reindex` rebuilds what search needs from the stored originals alone.

use super::support::{archive_with_mail, outcome, run};

#[tokio::test]
async fn reindex_after_the_search_vectors_were_cleared_makes_search_find_everything_again() {
    let a = archive_with_mail().await;
    let admin = a.app.set_up_admin().await;
    // A query, and the subject of the one message it must find.
    let searches = [
        ("1042", "Invoice 1042"),
        ("figures.pdf", "Figures"),
        ("lunch", "Lunch"),
        ("minutes", "Board minutes"),
    ];
    let found = async |query: &str, subject: &str| {
        let (status, html) = a.app.page(&admin, &format!("/messages?q={query}")).await;
        assert_eq!(status, 200, "{query}");
        html.contains(&format!(">{subject}<"))
    };
    for (query, subject) in searches {
        assert!(
            found(query, subject).await,
            "{query} finds {subject:?} at first"
        );
    }

    // Every vector emptied, as a failed upgrade or a careless UPDATE would leave them.
    sqlx::query("UPDATE messages SET search = ''::tsvector")
        .execute(&a.app.pool)
        .await
        .unwrap();
    for (query, subject) in searches {
        assert!(!found(query, subject).await, "{query} finds nothing now");
    }

    let (code, out) = outcome(&run(&a.app, &["reindex"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rebuilt the search vectors of"), "{out}");
    for (query, subject) in searches {
        assert!(
            found(query, subject).await,
            "{query} finds {subject:?} again: {out}"
        );
    }
    // A finished run leaves nothing for `--resume`.
    let (code, out) = outcome(&run(&a.app, &["reindex", "--resume"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("continuing: 0 messages"), "{out}");
}
