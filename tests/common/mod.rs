//! Test harness: real PostgreSQL, the real `App` on a random loopback port, an HTTP client.
#![allow(dead_code)]

pub mod auth;
pub mod clamd;
pub mod dovecot;
pub mod fake_google;
pub mod gmail_imap;
pub mod idp;
pub mod mail;
pub mod microsoft;
pub mod pg;
pub mod process;
pub mod smtp;

use std::net::SocketAddr;
use std::path::PathBuf;

use daygle::App;
use daygle::config::Settings;
use reqwest::redirect::Policy;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running app with its own database and data directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<daygle::error::Result<()>>>,
    /// The app's view of its database (tests can declare an outage).
    pub db_health: daygle::db::DbHealth,
}

/// Settings for a test: a fresh database, port 0, a temporary data directory.
pub async fn test_settings() -> (Settings, tempfile::TempDir, String) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database_url = pg::fresh_database().await;
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = daygle::config::Secret::new(database_url.clone());
    settings.database.max_connections = 5;
    settings.storage.data_dir = data_dir.path().display().to_string();
    (settings, data_dir, database_url)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `adjust` has changed the test settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, data_dir, database_url) = test_settings().await;
    adjust(&mut settings);
    let app = App::build(settings).await.expect("app builds");
    let addr = app.local_addr();
    let pool = app.state().pool.clone();
    let shutdown = app.shutdown_token();
    let db_health = app.state().db_health.clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        url: format!("http://{addr}"),
        client: client(),
        pool,
        database_url,
        data_dir,
        shutdown,
        server: Some(server),
        db_health,
    }
}

/// reqwest is built without a TLS provider of its own (`rustls-no-provider`, as `main` installs
/// ring for the whole process); a test process must do the same before it builds a client.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A cookie-keeping client that does not follow redirects, so tests can assert on them.
pub fn client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("http client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Path of the built `daygle` binary, for tests that run it as a process.
pub fn daygle_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_daygle"))
}
