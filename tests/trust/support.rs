//! A small archive with an attachment and a quarantined message, and a way to run `daygle`
//! against it.

use std::process::Output;

use crate::common::TestApp;
use crate::common::mail::{Mail, archive, build};
use crate::common::process::daygle;

pub struct Archive {
    pub app: TestApp,
    pub sales: i64,
    /// sales/INBOX: [plain, with attachment, plain]
    pub sales_ids: Vec<i64>,
    pub board_ids: Vec<i64>,
}

pub async fn archive_with_mail() -> Archive {
    let app = crate::common::spawn_app().await;
    let sales = app.insert_account("sales").await;
    let board = app.insert_account("board").await;
    let sales_ids = archive(
        &app,
        sales,
        "INBOX",
        vec![
            build(&Mail {
                subject: "Invoice 1042",
                message_id: "invoice@example.org",
                ..Mail::default()
            }),
            build(&Mail {
                subject: "Figures",
                message_id: "figures@example.org",
                attachment: Some(("figures.pdf", b"%PDF-1.4 figures")),
                ..Mail::default()
            }),
            build(&Mail {
                subject: "Lunch",
                message_id: "lunch@example.org",
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
            subject: "Board minutes",
            message_id: "minutes@example.org",
            ..Mail::default()
        })],
    )
    .await;
    Archive {
        app,
        sales,
        sales_ids,
        board_ids,
    }
}

/// Runs `daygle ARGS` against the app's database and data directory.
pub fn run(app: &TestApp, args: &[&str]) -> Output {
    daygle(&app.data_path())
        .args(args)
        .env("DAYGLE__DATABASE__URL", &app.database_url)
        .env("DAYGLE__STORAGE__DATA_DIR", app.data_path())
        .output()
        .expect("run daygle")
}

/// Exit code and stdout+stderr.
pub fn outcome(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs SQL that breaks the archive the way a failing disk or a bad restore would: with the
/// foreign keys' triggers off for this transaction only.
pub async fn damage(app: &TestApp, sql: &str) {
    let mut tx = app.pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("disable triggers");
    sqlx::raw_sql(sql).execute(&mut *tx).await.expect("damage");
    tx.commit().await.expect("commit");
}
