use super::fixtures::{listed_ids, world};

pub async fn search(w: &super::fixtures::World, client: &reqwest::Client, q: &str) -> Vec<i64> {
    let url = format!("/messages?q={}", daygle::render::html::percent_encode(q));
    let (status, html) = w.app.page(client, &url).await;
    assert_eq!(status, 200, "{q}: {html}");
    listed_ids(&html)
}

#[tokio::test]
async fn every_operator_finds_exactly_the_messages_it_describes() {
    let w = world().await;
    let [invoice, reply, figures, news] = w.sales_ids[..] else {
        panic!()
    };
    let secret = w.board_ids[0];
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("", vec![news, figures, secret, reply, invoice]),
        ("invoice", vec![secret, reply, invoice]),
        ("invoice printing", vec![invoice]),
        ("\"annual report\"", vec![invoice]),
        ("\"report annual\"", vec![]),
        ("invoice -paid", vec![secret, invoice]),
        // "quarterly" finds "quarter" too (same stem).
        ("paid OR quarterly", vec![figures, secret, reply]),
        ("from:bob", vec![reply]),
        ("from:\"Carol Clerk\"", vec![figures]),
        ("to:alice@example.org", vec![reply]),
        ("subject:quarterly", vec![figures]),
        ("subject:paid", vec![]),
        ("body:paid", vec![reply]),
        ("filename:figures", vec![figures]),
        ("has:attachment", vec![figures]),
        ("after:2024-04-01", vec![news, figures]),
        ("before:2024-03-02", vec![invoice]),
        ("after:2024-03-02 before:2024-04-01", vec![secret, reply]),
        ("account:board", vec![secret]),
        (
            "folder:INBOX -account:board",
            vec![news, figures, reply, invoice],
        ),
        ("msgid:<figures@example.net>", vec![figures]),
        ("larger:100 smaller:100M has:attachment", vec![figures]),
        ("smaller:10", vec![]),
        ("INVOICE", vec![secret, reply, invoice]),
    ];
    for (q, expected) in cases {
        assert_eq!(search(&w, &w.admin, q).await, expected, "query: {q}");
    }
}

#[tokio::test]
async fn a_malformed_search_is_explained_not_a_server_error() {
    let w = world().await;
    for q in [
        "before:yesterday",
        "\"unclosed",
        "OR",
        "larger:lots",
        "-onlynot",
    ] {
        let url = format!("/messages?q={}", daygle::render::html::percent_encode(q));
        let (status, html) = w.app.page(&w.admin, &url).await;
        assert_eq!(status, 200, "{q}");
        assert!(
            html.contains("Your search could not be read"),
            "{q}: no explanation"
        );
        assert!(html.contains("/messages/search-help"));
    }
    let (status, html) = w.app.page(&w.admin, "/messages/search-help").await;
    assert_eq!(status, 200);
    assert!(html.contains("has:attachment") && html.contains("larger:10M"));
}

#[tokio::test]
async fn pages_follow_on_without_repeats_and_filters_apply() {
    let w = world().await;
    // A page size of 10 is the smallest; add enough mail for three pages.
    let raws = (0..25)
        .map(|i| {
            super::fixtures::build(&super::fixtures::Mail {
                subject: &format!("Bulk {i}"),
                message_id: &format!("bulk-{i}@example.org"),
                date: 1_600_000_000 + i * 60,
                ..Default::default()
            })
        })
        .collect();
    super::fixtures::archive(&w.app, w.sales, "Archive/2020", raws).await;
    sqlx::query("UPDATE users SET page_size = 10")
        .execute(&w.app.pool)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut url = format!("/messages?account={}&folder=Archive/2020", w.sales);
    loop {
        let (status, html) = w.app.page(&w.admin, &url).await;
        assert_eq!(status, 200);
        seen.extend(listed_ids(&html));
        assert!(
            html.contains("25 messages"),
            "count shown on every page: {url}\n{html}"
        );
        let Some(start) = html
            .find("href=\"/messages?")
            .and_then(|_| html.find("Older »"))
        else {
            break;
        };
        let link_start = html[..start].rfind("href=\"").unwrap() + 6;
        url = html[link_start..start]
            .trim_end_matches("\">")
            .replace("&#38;", "&")
            .replace("&amp;", "&");
    }
    assert_eq!(seen.len(), 25);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "a message appeared on two pages");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest (last archived, latest date) first");

    let (status, html) = w.app.page(&w.admin, "/messages?attachments=1").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(listed_ids(&html), vec![w.sales_ids[2]]);
    let (status, html) = w
        .app
        .page(&w.admin, "/messages?from=2024-03-02&to=2024-03-02")
        .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(listed_ids(&html), vec![w.sales_ids[1]]);
    let (status, html) = w.app.page(&w.admin, "/messages?verdict=infected").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No messages match") || listed_ids(&html).is_empty());
}

#[tokio::test]
async fn matches_are_highlighted_and_searches_are_audited() {
    let w = world().await;
    let (status, html) = w.app.page(&w.reader, "/messages?q=paid").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<mark>Paid</mark>"), "{html}");
    let row: (String, serde_json::Value) = sqlx::query_as(
        "SELECT username, details FROM audit_log WHERE action = 'mail.search' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&w.app.pool)
    .await
    .unwrap();
    assert_eq!(row.0, "reader");
    assert_eq!(row.1["query"], "paid");
}

#[tokio::test]
async fn relevance_sort_puts_the_best_match_first() {
    let w = world().await;
    let (status, html) = w
        .app
        .page(&w.reader, "/messages?q=invoice&sort=relevance")
        .await;
    assert_eq!(status, 200);
    let ids = listed_ids(&html);
    assert_eq!(ids.len(), 2);
    // "invoice" in the subject (weight A) and the body beats a single mention.
    assert_eq!(ids[0], w.sales_ids[0]);
}

/// The examples of issue #13: what a new user types finds the message it names.
#[tokio::test]
async fn part_words_forms_accents_prefixes_and_cjk_find_their_message() {
    let w = world().await;
    let mail =
        |subject: &'static str, from: (&'static str, &'static str), body: &'static str, id| {
            super::fixtures::build(&super::fixtures::Mail {
                subject,
                from,
                body,
                message_id: id,
                date: 1_600_000_000,
                ..Default::default()
            })
        };
    let ids = super::fixtures::archive(
        &w.app,
        w.sales,
        "Lists",
        vec![
            mail(
                "I-D ACTION:draft-ietf-mboned-mix-00.txt",
                ("IETF", "i-d@ietf.org"),
                "A new draft.",
                "d1@x",
            ),
            mail(
                "Order from scoffman@wellpartner.com",
                ("Shop", "shop@example.org"),
                "Order placed.",
                "d2@x",
            ),
            mail(
                "Banned file: auto__mail.python.bat",
                ("Scanner", "scan@example.org"),
                "Removed.",
                "d3@x",
            ),
            mail(
                "Monthly billing",
                ("Billing", "billing@example.org"),
                "Two invoices attached.",
                "d4@x",
            ),
            mail(
                "Termin",
                ("Jörg Müller", "joerg@example.de"),
                "Bis morgen.",
                "d5@x",
            ),
            mail(
                "会議の議事録",
                ("Tanaka", "tanaka@example.jp"),
                "議事録を送ります。",
                "d6@x",
            ),
        ],
    )
    .await;
    let [draft, order, banned, billing, termin, minutes] = ids[..] else {
        panic!()
    };
    for (q, expected) in [
        ("mboned", vec![draft]),
        ("ietf", vec![draft]),
        ("draft-ietf-mboned", vec![draft]),
        ("subject:mboned", vec![draft]),
        ("wellpartner", vec![order]),
        ("wellpartner.com", vec![order]),
        ("\"Banned file auto mail python bat\"", vec![banned]),
        ("python bat", vec![banned]),
        ("invoices folder:Lists", vec![billing]),
        ("invoicing folder:Lists", vec![billing]),
        ("invoic* folder:Lists", vec![billing]),
        ("muller", vec![termin]),
        ("Muller", vec![termin]),
        ("議事録", vec![minutes]),
        ("議事", vec![minutes]),
        ("-議事 folder:Lists bat OR muller", vec![termin, banned]),
    ] {
        let mut found = search(&w, &w.admin, q).await;
        found.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(found, expected, "query: {q}");
    }
}
