//! Hostile e-mail HTML opened in real Chromium: nothing in it may run or reach the network.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::driver::{self, Driver};
use crate::common::auth::{PASSWORD, spawn_auth_app};
use crate::common::mail::{Mail, archive, build};

/// A loopback listener that counts every connection: each payload aims its request here.
async fn tripwire() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, p) = (hits.clone(), paths.clone());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            p.lock().unwrap().push(line);
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: image/gif\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
        }
    });
    (port, hits, paths)
}

fn payloads(port: u16) -> String {
    let t = format!("http://127.0.0.1:{port}");
    format!(
        r#"<p id="marker">Hostile message body</p>
<script>parent.document.title='pwned-script'; window.top.pwned=1; fetch('{t}/script')</script>
<img src="x" onerror="parent.document.title='pwned-onerror'">
<a id="jslink" href="javascript:parent.document.title='pwned-js-url'">click me</a>
<svg onload="parent.document.title='pwned-svg'"><script>parent.document.title='pwned-svg-script'</script></svg>
<math><maction actiontype="statusline" xlink:href="javascript:parent.document.title='pwned-math'">m</maction></math>
<div style="background-image:url({t}/css-url)">css</div>
<div style="width:expression(parent.document.title='pwned-expr')">expr</div>
<style>@import '{t}/css-import'; body {{ background: url({t}/style-tag) }}</style>
<link rel="stylesheet" href="{t}/link">
<meta http-equiv="refresh" content="0;url={t}/meta-refresh">
<img src="{t}/remote-image.gif">
<img srcset="{t}/srcset.gif 1x">
<form action="{t}/form" method="post"><input name="pw"><button>go</button></form>
<iframe src="{t}/iframe"></iframe>
<object data="{t}/object"></object><embed src="{t}/embed">
<base href="{t}/base/"><img src="relative.gif">
<video poster="{t}/poster.gif" src="{t}/video"></video><audio src="{t}/audio"></audio>
<table background="{t}/table-bg"><tr><td>cell</td></tr></table>
<noscript><p title="</noscript><img src=x onerror=parent.document.title='pwned-mxss'>"></p></noscript>
<img src="https://tracker.example/pixel.gif">"#
    )
}

#[tokio::test]
async fn hostile_html_runs_no_script_and_loads_nothing_until_the_reader_allows_images() {
    if !driver::available() {
        eprintln!("skipped: /usr/bin/chromium and /usr/bin/chromedriver are needed");
        return;
    }
    let (port, hits, paths) = tripwire().await;
    let app = spawn_auth_app().await;
    app.set_up_admin().await;
    let account = app.insert_account("inbox").await;
    let id = archive(
        &app,
        account,
        "INBOX",
        vec![build(&Mail {
            subject: "Totally normal newsletter",
            message_id: "hostile-corpus@example.org",
            html: Some(&payloads(port)),
            ..Mail::default()
        })],
    )
    .await[0];

    let chrome = Driver::start().await;
    let b = chrome.browser().await;
    b.goto(&app.url("/login")).await;
    b.fill("input[name=username]", crate::common::auth::ADMIN)
        .await;
    b.fill("input[name=password]", PASSWORD).await;
    b.click("main button[type=submit]").await;
    b.wait_path("/").await;

    b.goto(&app.url(&format!("/messages/{id}"))).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let title = b.execute("return document.title").await;
    assert_eq!(
        title, "Totally normal newsletter · Daygle Mail Archiver",
        "a payload ran"
    );
    assert_eq!(b.execute("return typeof window.pwned").await, "undefined");
    b.screenshot("20-hostile-message-desktop").await;

    b.enter_frame("iframe.mail-frame").await;
    let text = b.execute("return document.body.innerText").await;
    assert!(
        text.as_str().unwrap_or("").contains("Hostile message body"),
        "the body is not shown: {text}"
    );
    // Following the javascript: link must not run it either.
    let links = b
        .execute("return document.querySelectorAll('a[href^=\"javascript\"]').length")
        .await;
    assert_eq!(links, 0);
    b.leave_frame().await;
    assert_eq!(
        b.execute("return document.title").await,
        "Totally normal newsletter · Daygle Mail Archiver"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "requests left the page: {:?}",
        paths.lock().unwrap()
    );

    // With consent, remote images load — and only images: the tripwire sees that one request.
    b.click("a[href$='?remote=1']").await;
    b.wait_path(&format!("/messages/{id}?remote=1")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = paths.lock().unwrap().clone();
    assert!(
        seen.iter().any(|l| l.contains("/remote-image.gif")),
        "the allowed image was not requested: {seen:?}"
    );
    for line in &seen {
        assert!(
            line.starts_with("GET /remote-image.gif"),
            "unexpected request: {line}"
        );
    }
    assert_eq!(
        b.execute("return document.title").await,
        "Totally normal newsletter · Daygle Mail Archiver"
    );

    b.goto(&app.url("/messages?q=newsletter")).await;
    b.screenshot("21-message-list-desktop").await;
    b.set_width(390, 844).await;
    b.screenshot("22-message-list-phone").await;
    b.goto(&app.url(&format!("/messages/{id}"))).await;
    b.screenshot("23-message-phone").await;
    b.close().await;
}
