//! "Connect Google account" / "Connect Microsoft 365 account" through the real server over
//! HTTP, against the fake Google and Microsoft on loopback: the add form's three choices, the
//! connect button, the provider's consent page (the fakes approve at once), the callback, and a
//! sync that archives the fake mailbox. The callback refuses a missing state, a reused state, a
//! state from another session, a user without `manage_accounts`, and shows a declined consent
//! in plain words; an `invalid_grant` later asks for a reconnect, which works.

use daygle::config::Settings;
use daygle::ingest::accounts;
use daygle::ingest::source::{SyncDeps, SyncOutcome, sync_account};
use daygle::secrets::Keys;

use crate::common::auth::PASSWORD;
use crate::common::fake_google::{self, FakeGoogle};
use crate::common::microsoft::{self, FakeMicrosoft};
use crate::common::{TestApp, client, spawn_app_with};

struct Setup {
    app: TestApp,
    admin: reqwest::Client,
    settings: Settings,
    _secrets: tempfile::TempDir,
}

/// The app with `[google]` and `[microsoft]` pointed at the fakes, the scheduler off (the test
/// syncs), and a signed-in administrator.
async fn setup(google: &FakeGoogle, ms: &FakeMicrosoft) -> Setup {
    let secrets = tempfile::tempdir().expect("temp dir");
    let google_secret = secrets.path().join("google");
    std::fs::write(&google_secret, format!("{}\n", fake_google::CLIENT_SECRET)).expect("secret");
    let ms_secret = secrets.path().join("microsoft");
    std::fs::write(&ms_secret, format!("{}\n", microsoft::CLIENT_SECRET)).expect("secret");
    let mut used = None;
    let app = spawn_app_with(|s| {
        s.security.login_rate_per_minute = 10_000;
        s.sync.enabled = false;
        google.configure(s, google_secret.to_str().expect("path"));
        ms.configure(s, ms_secret.to_str().expect("path"));
        used = Some(s.clone());
    })
    .await;
    let admin = app.set_up_admin().await;
    Setup {
        app,
        admin,
        settings: used.expect("settings"),
        _secrets: secrets,
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

impl Setup {
    /// Adds an account through the form's Google / Microsoft 365 choice; returns its id.
    async fn add(&self, source: &str, name: &str) -> i64 {
        let res = self
            .app
            .submit(
                &self.admin,
                &format!("/accounts?add={source}"),
                "/accounts",
                &[("source", source), ("name", name)],
            )
            .await;
        assert_eq!(
            res.status(),
            303,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let to = location(&res);
        assert!(to.ends_with("?done=created-oauth"), "{to}");
        to.trim_start_matches("/accounts/")
            .split('?')
            .next()
            .and_then(|id| id.parse().ok())
            .expect("account id")
    }

    /// Presses the connect button as `c`; returns the provider URL the browser is sent to.
    async fn press_connect(&self, c: &reqwest::Client, id: i64) -> String {
        let path = format!("/accounts/{id}");
        let res = self
            .app
            .submit(c, &path, &format!("{path}/connect"), &[])
            .await;
        assert_eq!(
            res.status(),
            303,
            "{}",
            res.text().await.unwrap_or_default()
        );
        location(&res)
    }

    /// The provider's consent page (the fake answers at once): the callback URL it sends the
    /// browser back to.
    async fn consent(&self, provider_url: &str) -> String {
        let res = client().get(provider_url).send().await.expect("authorize");
        assert!(res.status().is_redirection(), "{}", res.status());
        let back = location(&res);
        assert!(
            back.starts_with(&self.app.url("/accounts/oauth/callback?")),
            "{back}"
        );
        back
    }

    async fn callback(&self, c: &reqwest::Client, url: &str) -> (u16, String, String) {
        let res = c.get(url).send().await.expect("callback");
        let status = res.status().as_u16();
        let to = location(&res);
        (status, to, res.text().await.expect("body"))
    }

    async fn page(&self, id: i64) -> String {
        let (status, html) = self.app.page(&self.admin, &format!("/accounts/{id}")).await;
        assert_eq!(status, 200);
        html
    }

    async fn sync(&self, id: i64) -> daygle::error::Result<SyncOutcome> {
        let keys = Keys::load(&self.settings.security, self.app.data_dir.path()).expect("keys");
        let account = accounts::get(&self.app.pool, id).await.expect("account");
        let deps = SyncDeps {
            pool: &self.app.pool,
            settings: &self.settings,
            keys: &keys.sealing,
            heartbeat: None,
        };
        sync_account(&deps, &account).await
    }

    async fn archived(&self, id: i64) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE account_id = $1")
            .bind(id)
            .fetch_one(&self.app.pool)
            .await
            .expect("count")
    }

    async fn refusals(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT details->>'reason' FROM audit_log WHERE action = 'account.connect_refused' ORDER BY id",
        )
        .fetch_all(&self.app.pool)
        .await
        .expect("audit")
    }
}

fn mail(n: usize, to: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: Connected {n}\r\nMessage-ID: <connect{n}@example.com>\r\nDate: Mon, 6 Nov 2023 10:00:00 +0000\r\n\r\nBody {n}\r\n"
    )
    .into_bytes()
}

async fn fakes() -> (FakeGoogle, FakeMicrosoft) {
    crate::common::install_tls_provider();
    let google = FakeGoogle::start("alice@example.com").await;
    let ms = FakeMicrosoft::start().await;
    ms.world.lock().unwrap().signed_in = "ann@contoso.example".into();
    (google, ms)
}

#[tokio::test]
async fn an_administrator_connects_a_google_account_and_its_mail_is_archived() {
    let (google, ms) = fakes().await;
    for n in 0..4 {
        google.deliver(&mail(n, "alice@example.com"), &["INBOX"]);
    }
    let s = setup(&google, &ms).await;

    let (status, form) = s.app.page(&s.admin, "/accounts?add=google").await;
    assert_eq!(status, 200);
    for choice in ["IMAP server", "Google (Gmail)", "Microsoft 365"] {
        assert!(form.contains(choice), "the form offers {choice}: {form}");
    }
    assert!(!form.contains("name=\"host\""), "no IMAP fields for Google");
    let id = s.add("google", "Alice Gmail").await;
    let page = s.page(id).await;
    assert!(page.contains("never connected"), "{page}");
    assert!(page.contains("Connect Google account"), "{page}");
    assert!(page.contains("Gmail API"), "{page}");

    let to = s.press_connect(&s.admin, id).await;
    assert!(
        to.starts_with(&format!("{}/o/oauth2/v2/auth?", google.url)),
        "{to}"
    );
    assert!(to.contains("code_challenge_method=S256"), "{to}");
    assert!(
        to.contains("gmail.readonly") && !to.contains("gmail.modify"),
        "{to}"
    );
    let back = s.consent(&to).await;
    let (status, done, _) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 303);
    assert_eq!(done, format!("/accounts/{id}?done=connected"));

    let page = s.page(id).await;
    assert!(page.contains("data-state=\"connected\""), "{page}");
    assert!(
        page.contains("alice@example.com"),
        "the connected identity shows: {page}"
    );
    assert!(
        page.contains("expires in"),
        "the access token's expiry shows: {page}"
    );
    let sealed: String =
        sqlx::query_scalar("SELECT oauth_refresh_sealed FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_one(&s.app.pool)
            .await
            .expect("row");
    assert!(sealed.starts_with("enc:v1:") && !sealed.contains("refresh"));
    assert!(
        !page.contains("1//refresh"),
        "the refresh token is write-only"
    );

    let outcome = s.sync(id).await.expect("sync");
    assert_eq!(outcome.archived, 4);
    assert_eq!(s.archived(id).await, 4);
    let page = s.page(id).await;
    assert!(
        page.contains("following changes from history id"),
        "the delta position shows: {page}"
    );
    let actions = s.app.audit_actions().await;
    for a in ["account.create", "account.connect_start", "account.connect"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

#[tokio::test]
async fn an_administrator_connects_a_microsoft_account_and_reconnects_it_after_revocation() {
    let (google, ms) = fakes().await;
    let user = "ann@contoso.example";
    let inbox = ms.add_folder(user, "Inbox", None);
    ms.deliver(user, &inbox, &[mail(1, user), mail(2, user), mail(3, user)]);
    let s = setup(&google, &ms).await;

    let id = s.add("microsoft", "Ann").await;
    let page = s.page(id).await;
    assert!(page.contains("Connect Microsoft 365 account"), "{page}");
    assert!(page.contains("Microsoft Graph"), "{page}");
    let to = s.press_connect(&s.admin, id).await;
    assert!(
        to.starts_with(&format!(
            "{}/{}/oauth2/v2.0/authorize?",
            ms.url,
            microsoft::TENANT
        )),
        "{to}"
    );
    assert!(
        to.contains("offline_access") && to.contains("Mail.Read"),
        "{to}"
    );
    let back = s.consent(&to).await;
    let (status, done, _) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 303, "connected");
    assert_eq!(done, format!("/accounts/{id}?done=connected"));
    assert_eq!(s.sync(id).await.expect("sync").archived, 3);
    let page = s.page(id).await;
    assert!(page.contains(user), "{page}");
    assert!(
        page.contains("following changes (delta link saved)"),
        "{page}"
    );

    // Consent revoked: the next sync stops the account and asks for a reconnect.
    ms.revoke_refresh();
    let failed = s.sync(id).await.expect_err("refused grant");
    assert!(failed.to_string().contains("reconnect"), "{failed}");
    let page = s.page(id).await;
    assert!(page.contains("data-state=\"reconnect\""), "{page}");
    assert!(page.contains("reconnect this account"), "{page}");
    assert!(page.contains("Reconnect Microsoft 365 account"), "{page}");

    let to = s.press_connect(&s.admin, id).await;
    let back = s.consent(&to).await;
    let (status, _, _) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 303, "reconnected");
    ms.deliver(user, &inbox, &[mail(4, user)]);
    assert_eq!(s.sync(id).await.expect("sync").archived, 1);
    assert_eq!(s.archived(id).await, 4, "nothing stored twice");
    assert!(s.page(id).await.contains("data-state=\"connected\""));
}

#[tokio::test]
async fn the_callback_refuses_a_missing_a_reused_and_a_foreign_state() {
    let (google, ms) = fakes().await;
    let s = setup(&google, &ms).await;
    let id = s.add("google", "Alice Gmail").await;

    // Missing state.
    let to = s.press_connect(&s.admin, id).await;
    let back = s.consent(&to).await;
    let code = back.split("code=").nth(1).expect("code").to_string();
    let (status, _, html) = s
        .callback(
            &s.admin,
            &s.app.url(&format!("/accounts/oauth/callback?code={code}")),
        )
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("carried no state"), "{html}");

    // Reused state: the first use connects, the replay is refused.
    let to = s.press_connect(&s.admin, id).await;
    let back = s.consent(&to).await;
    assert_eq!(s.callback(&s.admin, &back).await.0, 303);
    let (status, _, html) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 400);
    assert!(html.contains("already used"), "{html}");

    // From another session: a second sign-in of the same administrator started its own
    // connection; the first session's answer does not match it.
    let other = s.app.sign_in(crate::common::auth::ADMIN, PASSWORD).await;
    let theirs = s.consent(&s.press_connect(&s.admin, id).await).await;
    let _mine = s.press_connect(&other, id).await;
    let (status, _, html) = s.callback(&other, &theirs).await;
    assert_eq!(status, 400);
    assert!(html.contains("does not match"), "{html}");
    // ... and a session that started nothing.
    let third = s.app.sign_in(crate::common::auth::ADMIN, PASSWORD).await;
    let (status, _, html) = s.callback(&third, &theirs).await;
    assert_eq!(status, 400);
    assert!(html.contains("no connection was started"), "{html}");
    // The session that started it still finishes it.
    assert_eq!(s.callback(&s.admin, &theirs).await.0, 303);

    let reasons = s.refusals().await;
    assert_eq!(reasons.len(), 4, "each refusal audited: {reasons:?}");
}

#[tokio::test]
async fn the_callback_refuses_a_user_without_manage_accounts_and_explains_a_declined_consent() {
    let (google, ms) = fakes().await;
    let s = setup(&google, &ms).await;
    let id = s.add("google", "Alice Gmail").await;
    s.app.create_user("auditor", "Auditor", &[]).await;
    let auditor = s.app.sign_in("auditor", PASSWORD).await;

    let back = s.consent(&s.press_connect(&s.admin, id).await).await;
    let (status, _, _) = s.callback(&auditor, &back).await;
    assert_eq!(status, 403, "no manage_accounts, no connection");
    let res = s
        .app
        .submit(
            &auditor,
            "/profile",
            &format!("/accounts/{id}/connect"),
            &[],
        )
        .await;
    assert_eq!(res.status(), 403, "nor may they start one");
    let mode: Option<String> = sqlx::query_scalar("SELECT oauth_mode FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_one(&s.app.pool)
        .await
        .expect("row");
    assert_eq!(mode, None, "still not connected");

    google.lock().decline = true;
    let back = s.consent(&s.press_connect(&s.admin, id).await).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let (status, _, html) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("The account was not connected: the connection was declined on the provider")
            && html.contains("Alice Gmail"),
        "shown on the account page in plain words: {html}"
    );
    assert!(
        s.refusals().await.iter().any(|r| r.contains("declined")),
        "audited"
    );

    // An account for Bob's mailbox, connected by whoever is signed in at Google (Alice): refused.
    google.lock().decline = false;
    let res = s
        .app
        .submit(
            &s.admin,
            "/accounts?add=google",
            "/accounts",
            &[
                ("source", "google"),
                ("name", "Bob Gmail"),
                ("mailbox", "bob@example.com"),
            ],
        )
        .await;
    let bob: i64 = location(&res)
        .trim_start_matches("/accounts/")
        .split('?')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("account id");
    let back = s.consent(&s.press_connect(&s.admin, bob).await).await;
    let (status, _, html) = s.callback(&s.admin, &back).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("signed in alice@example.com, but this account archives bob@example.com"),
        "{html}"
    );
    assert!(s.page(bob).await.contains("never connected"));
}
