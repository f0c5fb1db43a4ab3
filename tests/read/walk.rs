//! Findings of the administrator's walk (issue #17) on the reading side: the way back to a
//! search and stepping through its results, undated mail marked, the time zone named, the
//! archive page leading into the search, and a refused export keeping the page.

use super::fixtures::{Mail, archive, build, listed_ids, world};
use crate::common::auth::csrf_from;

/// The first link at or after `marker` (or of the tag `marker` is in), entities decoded.
fn link(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at].rfind('<').unwrap_or(at);
    let rest = &html[start..];
    let href = rest.find("href=\"").expect("href") + 6;
    let end = rest[href..].find('"').expect("quote") + href;
    rest[href..end].replace("&amp;", "&").replace("&#38;", "&")
}

#[tokio::test]
async fn a_message_opened_from_a_search_leads_back_to_it_and_steps_through_its_results() {
    let w = world().await;
    let (_, list) = w.app.page(&w.reader, "/messages?q=invoice").await;
    let found = listed_ids(&list);
    assert_eq!(found.len(), 2, "{list}");
    let first = link(&list, "<td class=\"subject\">");
    assert!(first.contains("?back=q%3Dinvoice"), "{first}");

    let (status, page) = w.app.page(&w.reader, &first).await;
    assert_eq!(status, 200);
    assert_eq!(
        link(&page, "id=\"back-to-list\"").as_str(),
        "/messages?q=invoice"
    );
    assert!(
        !page.contains("id=\"newer\""),
        "the newest result has nothing newer"
    );
    // "Older" is the next result of the search, not the next message of the archive.
    let older = link(&page, "id=\"older\"");
    assert!(
        older.starts_with(&format!("/messages/{}?back=", found[1])),
        "{older}"
    );
    let (_, page) = w.app.page(&w.reader, &older).await;
    assert!(
        !page.contains("id=\"older\""),
        "the last result has nothing older"
    );
    let newer = link(&page, "id=\"newer\"");
    assert!(
        newer.starts_with(&format!("/messages/{}?back=", found[0])),
        "{newer}"
    );
    assert_eq!(
        link(&page, "id=\"back-to-list\"").as_str(),
        "/messages?q=invoice"
    );

    // Never beyond the reader's grants: the board's invoice mail is not a neighbour.
    for id in &w.board_ids {
        assert!(!page.contains(&format!("/messages/{id}?")), "{page}");
    }
}

#[tokio::test]
async fn undated_mail_is_marked_and_every_page_names_its_time_zone() {
    let w = world().await;
    let dated = build(&Mail {
        subject: "Has no date",
        message_id: "undated@example.org",
        ..Mail::default()
    });
    let text = String::from_utf8(dated).unwrap();
    let undated: String = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("Date:"))
        .collect();
    archive(&w.app, w.sales, "Undated", vec![undated.into_bytes()]).await;

    let (_, list) = w.app.page(&w.reader, "/messages").await;
    let row = list
        .split("<tr>")
        .find(|r| r.contains("Has no date"))
        .unwrap_or_else(|| panic!("no undated row in {list}"));
    assert!(row.contains("class=\"badge undated\""), "{row}");
    let dated_row = list
        .split("<tr>")
        .find(|r| r.contains("Weekly newsletter"))
        .expect("a dated row");
    assert!(!dated_row.contains("undated"), "{dated_row}");
    assert!(list.contains("Times in UTC"), "{list}");

    sqlx::query("UPDATE users SET timezone = 'Europe/Berlin' WHERE username = 'reader'")
        .execute(&w.app.pool)
        .await
        .unwrap();
    for page in ["/messages", "/archives", "/profile", "/"] {
        let (_, html) = w.app.page(&w.reader, page).await;
        assert!(html.contains("Times in Europe/Berlin"), "{page}: {html}");
    }
}

#[tokio::test]
async fn an_archive_page_lists_its_folders_with_counts_that_lead_into_the_search() {
    let w = world().await;
    archive(
        &w.app,
        w.sales,
        "Archive/2023",
        vec![build(&Mail {
            subject: "Old one",
            message_id: "old@example.org",
            ..Mail::default()
        })],
    )
    .await;
    let (status, html) = w
        .app
        .page(&w.reader, &format!("/archives/{}", w.sales))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("5 messages"), "{html}");
    let folder = |name: &str| {
        html.split("<tr>")
            .find(|r| r.contains(&format!(">{name}</a>")))
            .unwrap_or_else(|| panic!("no {name} row in {html}"))
            .to_string()
    };
    assert!(folder("INBOX").contains(">4</td>"));
    let row = folder("Archive/2023");
    assert!(row.contains(">1</td>"), "{row}");
    let search = link(&row, "<td>");
    assert_eq!(
        search,
        format!("/messages?account={}&folder=Archive%2F2023", w.sales)
    );
    let (_, list) = w.app.page(&w.reader, &search).await;
    assert_eq!(listed_ids(&list).len(), 1, "{list}");
    assert!(list.contains("Old one"));

    assert_eq!(
        w.app
            .page(&w.reader, &format!("/archives/{}", w.board))
            .await
            .0,
        404
    );
    let (_, admin_view) = w
        .app
        .page(&w.admin, &format!("/archives/{}", w.board))
        .await;
    assert!(admin_view.contains(&format!("href=\"/accounts/{}\"", w.board)));
}

#[tokio::test]
async fn exporting_with_nothing_ticked_says_so_on_the_same_list() {
    let w = world().await;
    let (_, list) = w.app.page(&w.admin, "/messages?q=invoice").await;
    let page = link(&list, "<td class=\"subject\">");
    assert!(page.contains("back="));
    let res = w
        .admin
        .post(w.app.url("/messages/export"))
        .form(&[
            ("csrf_token", csrf_from(&list).as_str()),
            ("page", "q=invoice"),
            ("format", "zip"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"action-problem\""), "{html}");
    assert!(
        html.contains("value=\"invoice\""),
        "the search is kept: {html}"
    );
    assert_eq!(
        listed_ids(&html).len(),
        3,
        "the results are still listed: {html}"
    );
}
