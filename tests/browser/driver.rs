//! Headless Chromium through chromedriver (started on loopback, killed by PID when dropped),
//! driven with fantoccini over plain HTTP. The helpers below only add what every browser test
//! wants: CSS selectors, waiting for a path, screenshots saved as test artefacts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

pub struct Browser {
    client: Client,
}

/// Whether Chromium and chromedriver are installed. On a developer's machine a browser test
/// without them is skipped; in CI (`CI=true`) a missing browser fails the test instead, so a
/// green run always means the browser tests ran.
pub fn available() -> bool {
    let present = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists();
    if !present && std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI=true but /usr/bin/chromium or /usr/bin/chromedriver is missing: install chromium and chromium-driver"
        );
    }
    present
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: tempfile::tempdir().unwrap(),
        };
        // chromedriver takes a moment to listen; a refused connection means "not yet".
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    pub async fn browser(&self) -> Browser {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", self._profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("new WebDriver session");
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits (up to 10 s) until the browser shows `expected`: a click that submits a form
    /// returns before the next page has loaded.
    pub async fn wait_path(&self, expected: &str) {
        self.wait_path_where(expected, |p| p == expected).await;
    }

    pub async fn wait_path_where(&self, expected: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await;
            if ok(&path) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {expected}, browser is at {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    pub async fn set_width(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// A screenshot of the whole page: the window grows to the page's height for the shot
    /// (up to 5000 px) and returns to `width` × 900 afterwards.
    pub async fn screenshot_full(&self, name: &str, width: u32) {
        let page = self
            .execute("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(900) as u32;
        let chrome = self
            .execute("return window.outerHeight - window.innerHeight")
            .await
            .as_u64()
            .unwrap_or(0) as u32;
        self.set_width(width, (page + chrome).clamp(900, 5000))
            .await;
        self.screenshot(name).await;
        self.set_width(width, 900).await;
    }

    /// Runs `script` (a function body) in the current frame and returns its result.
    pub async fn execute(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Makes the iframe matching `css` the current frame.
    pub async fn enter_frame(&self, css: &str) {
        self.find(css)
            .await
            .enter_frame()
            .await
            .expect("enter frame");
    }

    pub async fn leave_frame(&self) {
        self.client.enter_parent_frame().await.expect("leave frame");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
