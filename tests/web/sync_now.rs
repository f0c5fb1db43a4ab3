//! "Sync now" (issue #17): an account in backoff is due at once with its backoff forgotten,
//! the page says when the next sync is, and the status the page polls says the same.

use crate::common::auth::csrf_from;
use crate::common::spawn_app_with;

#[tokio::test]
async fn sync_now_clears_the_backoff_and_the_account_is_due_at_once() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await;
    let admin = app.set_up_admin().await;
    let id = app.insert_account("sales@example.org").await;
    sqlx::query(
        "INSERT INTO workers (name, account_id, state, consecutive_failures, last_error, next_run_at)
         VALUES ($1, $2, 'backoff', 3, 'LOGIN failed', now() + interval '1 hour')",
    )
    .bind(format!("sync:account:{id}"))
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let due = || async {
        daygle::ingest::scheduler::due_accounts(&app.pool)
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == id)
    };
    assert!(!due().await, "in backoff, the account waits");

    let (status, html) = app.page(&admin, &format!("/accounts/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("The last 3 attempts failed; it retries by itself."),
        "{html}"
    );
    assert!(html.contains("next sync in 59 min"), "{html}");
    assert!(html.contains(">Sync now</button>"), "{html}");

    let res = admin
        .post(app.url(&format!("/accounts/{id}/sync")))
        .form(&[("csrf_token", csrf_from(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (failures, state): (i32, String) =
        sqlx::query_as("SELECT consecutive_failures, state FROM workers WHERE account_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((failures, state.as_str()), (0, "idle"));
    assert!(due().await, "the scheduler takes it on its next tick");
    assert!(
        app.audit_actions()
            .await
            .contains(&"account.sync_now".to_string())
    );

    let (_, html) = app
        .page(&admin, &format!("/accounts/{id}?done=sync-now"))
        .await;
    assert!(
        html.contains("Sync requested: it starts within seconds"),
        "{html}"
    );
    let status: serde_json::Value = admin
        .get(app.url(&format!("/accounts/{id}/status")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "due");
    assert_eq!(status["next"], "next sync within seconds");
    assert_eq!(status["last_error"], "LOGIN failed");
    let all: serde_json::Value = admin
        .get(app.url("/workers/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["rows"][0]["id"], id);
    assert_eq!(all["rows"][0]["state"], "due");

    // A paused account is not synced behind the administrator's back: refused in words.
    sqlx::query("UPDATE accounts SET enabled = false WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, html) = app.page(&admin, &format!("/accounts/{id}")).await;
    assert!(!html.contains(">Sync now</button>"), "{html}");
    let res = admin
        .post(app.url(&format!("/accounts/{id}/sync")))
        .form(&[("csrf_token", csrf_from(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Syncing of this account is paused: resume it first.")
    );
}

/// The walk found 0.0 % coverage for a folder whose three messages were safely quarantined:
/// quarantined mail is accounted for, counted in its own column and linked.
#[tokio::test]
async fn quarantined_mail_counts_as_accounted_for_in_the_coverage() {
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await;
    let admin = app.set_up_admin().await;
    let id = app.insert_account("sales@example.org").await;
    sqlx::query(
        "INSERT INTO sync_state (account_id, folder, uidvalidity, last_uid, server_messages)
         VALUES ($1, 'INBOX', 7, 3, 3)",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    for uid in 1..=3i64 {
        sqlx::query(
            "INSERT INTO quarantine (id, account_id, folder, uidvalidity, uid, sha256, size,
               virus_name, wrapped_key, sealed_raw)
             VALUES (gen_random_uuid(), $1, 'INBOX', 7, $2, repeat('a', 64), 68,
               'Eicar-Test-Signature', 'enc:v1:test', '\\x00')",
        )
        .bind(id)
        .bind(uid)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let folders = daygle::archive::ledger::coverage(&app.pool, id)
        .await
        .unwrap();
    assert_eq!(folders[0].quarantined, 3);
    assert_eq!(folders[0].percent(), Some(100.0));
    let (_, html) = app.page(&admin, &format!("/accounts/{id}")).await;
    assert!(html.contains("coverage 100.0%"), "{html}");
    assert!(
        html.contains("<td><a href=\"/quarantine\">3</a></td>"),
        "{html}"
    );
    let (_, list) = app.page(&admin, "/accounts").await;
    assert!(list.contains("100.0%"), "{list}");
}
