//! Helpers for signed-in tests: the setup wizard, sign-in through the real form, users and
//! archive accounts created the way the app creates them.

use daygle::audit::Actor;
use daygle::auth::manage::{self, NewUser};
use daygle::auth::users;

use super::{TestApp, client};

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery staple";

/// The value of the first `csrf_token` hidden field in `html`.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a csrf_token field") + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_string()
}

/// The session cookie value the server set on `res`, if any.
pub fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("daygle_session="))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim_start_matches("daygle_session=")
                .to_string()
        })
}

impl TestApp {
    /// GETs `page` with `client`, takes its CSRF token, and POSTs `fields` plus the token to `action`.
    pub async fn submit(
        &self,
        client: &reqwest::Client,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let html = client
            .get(self.url(page))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        let token = csrf_from(&html);
        // First, as a browser sends our forms' hidden field: the server looks for it in the
        // body's first bytes.
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        client
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .expect("POST")
    }

    /// Runs the first-run wizard as a person would; returns the signed-in client.
    pub async fn set_up_admin(&self) -> reqwest::Client {
        let res = self
            .submit(
                &self.client,
                "/setup",
                "/setup",
                &[
                    ("username", ADMIN),
                    ("email", "admin@example.org"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), 303, "setup should redirect to the dashboard");
        self.client.clone()
    }

    /// Signs in through the login form with a fresh client.
    pub async fn sign_in(&self, username: &str, password: &str) -> reqwest::Client {
        let c = client();
        let res = self.login(&c, username, password).await;
        assert_eq!(res.status(), 303, "sign-in of {username} should succeed");
        c
    }

    pub async fn login(
        &self,
        c: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.submit(
            c,
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Creates a user with the named role and archive grants, as the CLI would.
    pub async fn create_user(&self, username: &str, role: &str, accounts: &[i64]) -> i64 {
        let role_id = users::role_id_by_name(&self.pool, role)
            .await
            .expect("role exists");
        manage::create_user(
            &self.pool,
            &Actor::cli(),
            &NewUser {
                username,
                email: "",
                password: PASSWORD,
                role_ids: &[role_id],
                account_ids: accounts,
            },
            12,
        )
        .await
        .expect("create user")
    }

    /// An archive account row, as the ingest side would create it.
    pub async fn insert_account(&self, name: &str) -> i64 {
        sqlx::query_scalar("INSERT INTO accounts (name, kind) VALUES ($1, 'imap') RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .expect("insert account")
    }

    pub async fn page(&self, c: &reqwest::Client, path: &str) -> (u16, String) {
        let res = c.get(self.url(path)).send().await.expect("GET");
        let status = res.status().as_u16();
        (status, res.text().await.expect("body"))
    }

    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("audit rows")
    }
}

/// An app whose sign-in rate limit does not get in the way of tests that sign in a lot.
pub async fn spawn_auth_app() -> TestApp {
    super::spawn_app_with(|s| s.security.login_rate_per_minute = 10_000).await
}
