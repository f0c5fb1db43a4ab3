use super::support::*;
use crate::common::dovecot::Dovecot;
use crate::common::spawn_app_with;

#[tokio::test]
async fn an_administrator_adds_an_account_tests_it_and_sees_its_ledger_and_worker() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("alice", "alice-pw");
    dovecot.write_messages("alice", "INBOX", &messages("web", 4), NEW);
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.connect_timeout_secs = 10;
    })
    .await;
    let admin = app.set_up_admin().await;
    let port = dovecot.port.to_string();

    let res = app
        .submit(
            &admin,
            "/accounts",
            "/accounts",
            &[
                ("name", "Alice"),
                ("host", "127.0.0.1"),
                ("port", &port),
                ("tls", "none"),
                ("username", "alice"),
                ("password", "alice-pw"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let path = location.split('?').next().expect("path").to_string();
    let id: i64 = path
        .rsplit('/')
        .next()
        .expect("id")
        .parse()
        .expect("numeric id");
    let sealed: String = sqlx::query_scalar("SELECT password_sealed FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("row");
    assert!(sealed.starts_with("enc:v1:") && !sealed.contains("alice-pw"));

    let tested = app
        .submit(&admin, &path, &format!("{path}/test"), &[])
        .await;
    let html = tested.text().await.expect("html");
    assert!(
        html.contains("Connected and logged in") && html.contains("INBOX"),
        "{html}"
    );
    assert!(!html.contains("alice-pw"), "the password is write-only");

    let started = std::time::Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&app.pool)
            .await
            .expect("count");
        if n == 4 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the scheduler archived {n} of 4"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, page) = app.page(&admin, &path).await;
    assert_eq!(status, 200);
    assert!(page.contains("100.0%"), "{page}");
    let (status, workers) = app.page(&admin, "/workers").await;
    assert_eq!(status, 200);
    assert!(
        workers.contains("sync:account:") && workers.contains("Alice"),
        "{workers}"
    );

    let refused = app
        .submit(
            &admin,
            &path,
            &format!("{path}/delete"),
            &[("confirm", "wrong")],
        )
        .await;
    assert_eq!(
        refused.status().as_u16(),
        422,
        "a wrong confirmation is explained"
    );
    // On the account page itself, with what was typed kept beside the reason (#17 walk).
    let shown = refused.text().await.unwrap();
    assert!(
        shown.contains("id=\"delete-problem\"")
            && shown.contains("“wrong” is not the account's name")
            && shown.contains("value=\"wrong\""),
        "{shown}"
    );
    let (status, _) = app.page(&admin, &path).await;
    assert_eq!(status, 200, "the account is still there");
    let deleted = app
        .submit(
            &admin,
            &path,
            &format!("{path}/delete"),
            &[("confirm", "Alice")],
        )
        .await;
    assert_eq!(deleted.status().as_u16(), 303);
    assert!(
        app.audit_actions()
            .await
            .iter()
            .any(|a| a == "account.delete")
    );
}

#[tokio::test]
async fn an_administrator_edits_an_account_and_a_blank_password_keeps_the_stored_one() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("bob", "bob-pw");
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
    })
    .await;
    let admin = app.set_up_admin().await;
    let port = dovecot.port.to_string();
    let fields = |password: &'static str, poll: &'static str| {
        vec![
            ("name", "Bob"),
            ("host", "127.0.0.1"),
            ("tls", "none"),
            ("username", "bob"),
            ("password", password),
            ("poll_secs", poll),
        ]
    };
    let mut create = fields("wrong-pw", "");
    create.push(("port", &port));
    let res = app.submit(&admin, "/accounts", "/accounts", &create).await;
    assert_eq!(res.status().as_u16(), 303);
    let path = res.headers()["location"]
        .to_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let sealed = |app: &crate::common::TestApp| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32, Option<i32>)>(
                "SELECT password_sealed, poll_interval_secs, delete_after_days FROM accounts WHERE name = 'Bob'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (before, _, _) = sealed(&app).await;

    // Change settings only: the password stays as it was.
    let mut edit = fields("", "120");
    edit.push(("port", &port));
    edit.push(("delete_after_days", "30"));
    let res = app.submit(&admin, &path, &path, &edit).await;
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let (after, poll, days) = sealed(&app).await;
    assert_eq!(after, before);
    assert_eq!((poll, days), (120, Some(30)));
    let (_, page) = app.page(&admin, &location).await;
    assert!(page.contains("Settings saved") && page.contains("value=\"120\""));
    assert!(!page.contains("wrong-pw"), "the password is write-only");

    // A new password is sealed and the connection test now logs in.
    let mut fix = fields("bob-pw", "120");
    fix.push(("port", &port));
    let res = app.submit(&admin, &path, &path, &fix).await;
    assert_eq!(res.status().as_u16(), 303);
    assert_ne!(sealed(&app).await.0, before);
    let tested = app
        .submit(&admin, &path, &format!("{path}/test"), &[])
        .await;
    assert!(
        tested
            .text()
            .await
            .unwrap()
            .contains("Connected and logged in")
    );

    // Bad input is explained on the page.
    let mut bad = fields("", "often");
    bad.push(("port", &port));
    let res = app.submit(&admin, &path, &path, &bad).await;
    assert_eq!(res.status().as_u16(), 422);
    assert!(res.text().await.unwrap().contains("poll interval"));
    assert!(
        app.audit_actions()
            .await
            .iter()
            .filter(|a| *a == "account.update")
            .count()
            == 2
    );
}

/// A loopback listener that plays a hostile "IMAP server": it greets, answers every command
/// with a NO carrying a marker banner, and keeps everything it was sent.
fn hostile_listener() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.write_all(b"* OK SECRET-BANNER-7 ready\r\n");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                kept.lock().unwrap().extend_from_slice(line.as_bytes());
                let tag = line.split_whitespace().next().unwrap_or("*").to_string();
                let _ =
                    stream.write_all(format!("{tag} NO SECRET-BANNER-7 internal\r\n").as_bytes());
                line.clear();
            }
        }
    });
    (port, seen)
}

#[tokio::test]
async fn moving_an_account_to_another_server_drops_the_password_and_errors_echo_no_banner() {
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("carl", "carl-secret-pw");
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        s.sync.connect_timeout_secs = 5;
        s.sync.command_timeout_secs = 5;
    })
    .await;
    let admin = app.set_up_admin().await;
    let port = dovecot.port.to_string();
    let res = app
        .submit(
            &admin,
            "/accounts",
            "/accounts",
            &[
                ("name", "Carl"),
                ("host", "127.0.0.1"),
                ("port", &port),
                ("tls", "none"),
                ("username", "carl"),
                ("password", "carl-secret-pw"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let path = res.headers()["location"]
        .to_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let (evil_port, seen) = hostile_listener();
    let evil = evil_port.to_string();
    let res = app
        .submit(
            &admin,
            &path,
            &path,
            &[
                ("name", "Carl"),
                ("host", "127.0.0.1"),
                ("port", &evil),
                ("tls", "none"),
                ("username", "carl"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let (_, page) = app.page(&admin, &location).await;
    assert!(page.contains("enter the password again"), "{page}");
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_sealed FROM accounts WHERE name = 'Carl'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, None, "the stored password is dropped");

    let tested = app
        .submit(&admin, &path, &format!("{path}/test"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(tested.contains("no stored password"), "{tested}");
    assert!(
        !String::from_utf8_lossy(&seen.lock().unwrap()).contains("carl-secret-pw"),
        "the old password never reaches the new endpoint"
    );

    // With a password entered for it, the failure is told in plain words, not the banner.
    app.submit(
        &admin,
        &path,
        &path,
        &[
            ("name", "Carl"),
            ("host", "127.0.0.1"),
            ("port", &evil),
            ("tls", "none"),
            ("username", "carl"),
            ("password", "typed-for-this-server"),
        ],
    )
    .await;
    let tested = app
        .submit(&admin, &path, &format!("{path}/test"), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(tested.contains("Connection test failed"), "{tested}");
    assert!(!tested.contains("SECRET-BANNER"), "{tested}");
}
