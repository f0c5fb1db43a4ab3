//! A small archive with known content, stored through the real ingest pipeline.

use crate::common::TestApp;
use crate::common::auth::PASSWORD;
pub use crate::common::mail::{Mail, archive, build};

/// Two accounts: "sales" (granted to the reader) and "board" (not), with a known set of mail.
pub struct World {
    pub app: TestApp,
    pub admin: reqwest::Client,
    pub reader: reqwest::Client,
    pub sales: i64,
    pub board: i64,
    /// Ids in "sales": [invoice, reply to invoice, report with attachment, newsletter]
    pub sales_ids: Vec<i64>,
    /// Ids in "board": [secret plan]
    pub board_ids: Vec<i64>,
}

pub async fn world() -> World {
    let app = crate::common::auth::spawn_auth_app().await;
    let admin = app.set_up_admin().await;
    let sales = app.insert_account("sales").await;
    let board = app.insert_account("board").await;
    app.create_user("reader", "Read Only", &[sales]).await;
    let reader = app.sign_in("reader", PASSWORD).await;
    let sales_ids = archive(
        &app,
        sales,
        "INBOX",
        vec![
            build(&Mail {
                subject: "Invoice 1042 for March",
                body: "Please find the invoice for the annual report printing. Due date is April 30.",
                message_id: "invoice-1042@example.org",
                date: 1_709_251_200, // 2024-03-01
                ..Mail::default()
            }),
            build(&Mail {
                from: ("Bob Baker", "bob@example.com"),
                to: "alice@example.org",
                subject: "Re: Invoice 1042 for March",
                body: "Paid today. Thanks!",
                message_id: "reply-1042@example.com",
                in_reply_to: Some("invoice-1042@example.org"),
                date: 1_709_337_600, // 2024-03-02
                ..Mail::default()
            }),
            build(&Mail {
                from: ("Carol Clerk", "carol@example.net"),
                subject: "Quarterly figures",
                body: "The quarterly figures are attached.",
                message_id: "figures@example.net",
                attachment: Some(("figures-q1.pdf", b"%PDF-1.4 not really a pdf")),
                date: 1_711_929_600, // 2024-04-01
                ..Mail::default()
            }),
            build(&Mail {
                from: ("News", "news@lists.example"),
                subject: "Weekly newsletter",
                body: "Draft plans and more. Visit https://example.org/news for details.",
                message_id: "news-1@lists.example",
                date: 1_712_534_400, // 2024-04-08
                ..Mail::default()
            }),
        ],
    )
    .await;
    let board_ids = archive(
        &app,
        board,
        "INBOX",
        vec![build(&Mail {
            from: ("Dana Director", "dana@example.org"),
            subject: "Secret plan: invoice restructuring",
            body: "Board eyes only. Invoice restructuring next quarter.",
            message_id: "secret@example.org",
            in_reply_to: Some("invoice-1042@example.org"),
            date: 1_709_424_000,
            ..Mail::default()
        })],
    )
    .await;
    World {
        app,
        admin,
        reader,
        sales,
        board,
        sales_ids,
        board_ids,
    }
}

/// The message ids linked from a list page, in order (links may carry `?back=…`).
pub fn listed_ids(html: &str) -> Vec<i64> {
    html.split("<a href=\"/messages/")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['"', '?'])?;
            rest[..end].parse().ok()
        })
        .collect()
}
