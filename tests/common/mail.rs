//! Test mail: messages built with mail-builder and stored through the real ingest pipeline.
#![allow(dead_code)]

use daygle::ingest::pipeline::{self, Batch, Incoming};
use mail_builder::MessageBuilder;

use super::TestApp;

pub struct Mail<'a> {
    pub from: (&'a str, &'a str),
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub date: i64,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub attachment: Option<(&'a str, &'a [u8])>,
    pub html: Option<&'a str>,
}

impl Default for Mail<'_> {
    fn default() -> Self {
        Mail {
            from: ("Alice Archer", "alice@example.org"),
            to: "team@example.org",
            subject: "Hello",
            body: "Just saying hello.",
            date: 1_704_067_200, // 2024-01-01T00:00:00Z
            message_id: "hello@example.org",
            in_reply_to: None,
            attachment: None,
            html: None,
        }
    }
}

pub fn build(mail: &Mail<'_>) -> Vec<u8> {
    let mut b = MessageBuilder::new()
        .from(mail.from)
        .to(mail.to)
        .subject(mail.subject)
        .date(mail.date)
        .message_id(mail.message_id)
        .text_body(mail.body);
    if let Some(parent) = mail.in_reply_to {
        b = b.in_reply_to(parent).references(parent);
    }
    if let Some(html) = mail.html {
        b = b.html_body(html);
    }
    if let Some((name, bytes)) = mail.attachment {
        b = b.attachment("application/pdf", name, bytes);
    }
    b.write_to_vec().expect("build message")
}

/// Stores `raws` in `folder` of `account` as IMAP messages with UIDs from 1; returns their ids
/// in the same order.
pub async fn archive(app: &TestApp, account: i64, folder: &str, raws: Vec<Vec<u8>>) -> Vec<i64> {
    let count = raws.len() as i64;
    let messages = raws
        .into_iter()
        .enumerate()
        .map(|(i, raw)| Incoming {
            uid: Some(i as i64 + 1),
            raw,
            internal_date: None,
            flags: Vec::new(),
        })
        .collect();
    pipeline::store(
        &app.pool,
        3,
        Batch {
            account_id: account,
            folder: folder.into(),
            uidvalidity: Some(1),
            messages,
            ledger: Vec::new(),
            advance_to: Some(count),
        },
    )
    .await
    .expect("store batch");
    sqlx::query_scalar("SELECT id FROM messages WHERE account_id = $1 AND folder = $2 ORDER BY uid")
        .bind(account)
        .bind(folder)
        .fetch_all(&app.pool)
        .await
        .expect("ids")
}
