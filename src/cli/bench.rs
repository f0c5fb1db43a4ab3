//! `daygle bench scan`: how fast clamd scans, measured with this archiver's own client.
//!
//! Every message is unique (random attachment bytes, fresh Message-ID) because clamd caches
//! clean verdicts by content hash: re-scanning the same bytes would measure the cache.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use base64::prelude::*;
use clap::{Args, Subcommand};

use daygle::config::Settings;
use daygle::scan::{Scanner, Verdict};

/// `daygle bench`: what to measure.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The throughput benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Scan generated messages with clamd (clamav.address) and print msgs/s and MB/s.
    Scan(ScanBench),
}

/// `daygle bench scan`: how many messages of what size to send to clamd.
#[derive(Debug, Args)]
pub struct ScanBench {
    /// Number of messages to scan.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Size of each message's attachment before base64, in bytes.
    #[arg(long, default_value_t = 20_000)]
    pub attachment_bytes: usize,
    /// Scans in flight at once. Default: clamav.concurrency.
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Runs the chosen benchmark and prints its figures.
pub async fn run(mut settings: Settings, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchWhat::Scan(args) = args.what;
    if let Some(n) = args.concurrency {
        settings.clamav.concurrency = n.max(1);
    }
    let scanner = Scanner::new(&settings.clamav);
    let version = scanner
        .version()
        .await
        .context("clamd must be reachable at clamav.address")?;
    let messages: Vec<Vec<u8>> = (0..args.messages)
        .map(|i| message(i, args.attachment_bytes))
        .collect();
    let total_bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "{version} at {}: {} messages, {:.1} KB each, concurrency {}",
        scanner.transport(),
        messages.len(),
        total_bytes as f64 / messages.len().max(1) as f64 / 1024.0,
        settings.clamav.concurrency
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for m in messages {
        let scanner = scanner.clone();
        // The scanner's semaphore bounds how many reach clamd at once.
        tasks.spawn(async move { scanner.scan(&m).await });
    }
    let (mut clean, mut other) = (0usize, Vec::new());
    while let Some(verdict) = tasks.join_next().await {
        match verdict.context("scan task failed")? {
            Verdict::Clean => clean += 1,
            v => other.push(v),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scanned in {secs:.2} s: {:.0} msgs/s, {:.1} MB/s ({clean} clean)",
        (clean + other.len()) as f64 / secs,
        total_bytes as f64 / secs / 1_000_000.0
    );
    if let Some(v) = other.first() {
        bail!("{} messages did not come back clean, e.g. {v}", other.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// A plausible business message: headers, a text part, and a base64 attachment of random bytes.
fn message(i: usize, attachment_bytes: usize) -> Vec<u8> {
    let mut attachment = vec![0u8; attachment_bytes];
    getrandom::fill(&mut attachment).expect("the operating system's random source failed");
    let encoded = BASE64_STANDARD.encode(&attachment);
    let mut body = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 1024);
    for line in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap_or_default());
        body.push_str("\r\n");
    }
    format!(
        "From: Sender {i} <sender{i}@example.org>\r\nTo: archive@example.com\r\n\
         Subject: Quarterly report {i}\r\nMessage-ID: <{}@bench.example.org>\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"bench\"\r\n\r\n--bench\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nplease find the report \
         attached. Figures are preliminary.\r\n\r\nRegards\r\n--bench\r\n\
         Content-Type: application/pdf; name=\"report-{i}.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report-{i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{body}--bench--\r\n",
        uuid::Uuid::new_v4()
    )
    .into_bytes()
}
