//! End-to-end ingest cost, measured from outside like an operator would: the real `daygle`
//! binary (`sync --once`, `import`) against a real Dovecot, on the embedded private PostgreSQL
//! cluster (durable: the cluster's own settings), scanning off. Nothing is asserted.
//!
//! Shapes (BENCH_SHAPES=typical,import,large,fanout; all by default):
//! - typical: BENCH_MESSAGES (5,000) messages of 5-50 KB, mean ~20 KB, 45% with an attachment
//!   built from a real file in tests/fixtures/attachments padded with incompressible bytes (as
//!   embedded images are); a quarter of those re-send an attachment of a recent message
//!   (forwards, replies). Synced with `daygle sync --once`.
//! - import: a different mailbox of the same mix as one mbox, `daygle import`.
//! - large: three 48.8 MB messages (base64 attachments), `daygle sync --once`.
//! - fanout: 250 messages each delivered to 20 recipients (different Delivered-To/Received
//!   headers, the same body and attachments): 5,000 copies in one mailbox.
//! - verify: `daygle verify archive` over everything the shapes before it stored, BENCH_RUNS
//!   (3) times, with CPU-seconds per GB of raw mail beside MB/s (e.g.
//!   BENCH_SHAPES=import,verify BENCH_MESSAGES=20000 for the figure in the README).
//!
//! Per shape: messages/s, CPU-seconds per message for `daygle` and for PostgreSQL (the
//! postmaster and all its processes, from /proc), peak RSS of `daygle` (VmHWM, polled),
//! stored bytes against raw bytes, and the load average beside every figure: the machine is
//! shared, and its load changes what the wall clock says.
//!
//! BENCH_PERF=DIR records `perf record -g` profiles of each `daygle` run and of the whole
//! machine (for PostgreSQL: `perf report -i DIR/SHAPE-all.data --comm postgres`) into DIR.
//!
//! cargo bench --bench ingest

// dovecot.rs allows dead_code itself; a second allow here is a clippy error.
#[path = "../tests/common/dovecot.rs"]
mod dovecot;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daygle::db::cluster::{Cluster, Tenure};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const WORDS: &[&str] = &[
    "quarterly",
    "report",
    "meeting",
    "budget",
    "project",
    "deadline",
    "invoice",
    "customer",
    "contract",
    "review",
    "schedule",
    "please",
    "attached",
    "update",
    "status",
    "team",
    "proposal",
    "delivery",
    "shipment",
    "order",
    "thanks",
    "regards",
    "follow",
    "question",
    "answer",
    "tomorrow",
    "afternoon",
    "agenda",
    "minutes",
    "approval",
    "security",
    "release",
    "the",
    "and",
    "for",
    "with",
    "that",
    "this",
    "from",
    "about",
    "will",
    "have",
    "your",
    "our",
    "we",
    "you",
    "can",
    "next",
    "week",
    "monday",
    "friday",
    "office",
    "travel",
    "expenses",
];
const NAMES: &[&str] = &[
    "Anna Schmidt",
    "Brian O'Neill",
    "Chloé Martin",
    "Daniel Kowalski",
    "Eva Lindqvist",
    "Farid Haddad",
    "Grace Liu",
    "Hiro Tanaka",
    "Isabel García",
    "Jonas Weber",
];

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sentence(rng: &mut Rng) -> String {
    let n = 6 + rng.below(14);
    let mut s: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let first = s[0].to_string();
    let cap = first[..1].to_uppercase() + &first[1..];
    s[0] = &cap;
    format!("{}.", s.join(" "))
}

fn paragraphs(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes {
        for _ in 0..(3 + rng.below(4)) {
            out.push_str(&sentence(rng));
            out.push(' ');
        }
        out.push_str("\r\n\r\n");
    }
    // Wrap at ~76 columns like real mail clients do.
    let mut wrapped = String::with_capacity(out.len() + out.len() / 70);
    let mut col = 0;
    for word in out.split(' ') {
        if col + word.len() > 76 {
            wrapped.push_str("\r\n");
            col = 0;
        }
        wrapped.push_str(word);
        wrapped.push(' ');
        col += word.len() + 1;
    }
    wrapped
}

fn base64_wrapped(data: &[u8]) -> String {
    use base64::prelude::*;
    let enc = BASE64_STANDARD.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

/// Real files (their first bytes make them what they are), padded to size with incompressible
/// bytes: office documents and PDFs are mostly compressed streams and images.
const FIXTURES: &[(&str, &str)] = &[
    ("invoice.pdf", "application/pdf"),
    (
        "budget.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("minutes.odt", "application/vnd.oasis.opendocument.text"),
    ("bundle.zip", "application/zip"),
    ("letter.rtf", "application/rtf"),
    (
        "roadmap.pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    (
        "contract.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
];

#[derive(Clone)]
struct Attachment {
    name: String,
    content_type: &'static str,
    bytes: Vec<u8>,
}

struct Generator {
    rng: Rng,
    fixtures: Vec<(String, &'static str, Vec<u8>)>,
    /// Attachments of recent messages, some of which are sent again.
    recent: VecDeque<Attachment>,
    pub attachments: usize,
    pub resent: usize,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attachments");
        let fixtures = FIXTURES
            .iter()
            .map(|(name, ct)| {
                (
                    name.to_string(),
                    *ct,
                    std::fs::read(dir.join(name)).expect("fixture"),
                )
            })
            .collect();
        Self {
            rng: Rng(seed),
            fixtures,
            recent: VecDeque::new(),
            attachments: 0,
            resent: 0,
        }
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.rng.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A fresh attachment of `len` bytes, or (a quarter of the time) one sent recently.
    fn attachment(&mut self, len: usize) -> Attachment {
        self.attachments += 1;
        if self.recent.len() > 10 && self.rng.below(4) == 0 {
            self.resent += 1;
            let i = self.rng.below(self.recent.len());
            return self.recent[i].clone();
        }
        let (name, content_type, head) = self.fixtures[self.rng.below(self.fixtures.len())].clone();
        // The real file's head (what makes it a PDF, a zip...), the rest incompressible.
        let mut bytes = head;
        bytes.truncate(len / 2);
        if bytes.len() < len {
            let pad = self.noise(len - bytes.len());
            bytes.extend_from_slice(&pad);
        }
        let (stem, ext) = name.split_once('.').unwrap_or((&name, "bin"));
        let a = Attachment {
            name: format!("{stem}-{}.{ext}", self.rng.below(100_000)),
            content_type,
            bytes,
        };
        self.recent.push_back(a.clone());
        if self.recent.len() > 50 {
            self.recent.pop_front();
        }
        a
    }

    fn headers(&mut self, tag: &str, i: usize) -> String {
        let from = NAMES[self.rng.below(NAMES.len())];
        let to = NAMES[self.rng.below(NAMES.len())];
        let addr = |n: &str| n.split(' ').next().unwrap_or("x").to_lowercase();
        let subject = sentence(&mut self.rng);
        format!(
            "Return-Path: <{f}@example.org>\r\nReceived: from mail.example.org (mail.example.org [192.0.2.{r}])\r\n\tby mx.example.com with ESMTPS id {i}{tag}; Mon, 6 May 2024 09:{mm:02}:00 +0200\r\n\
             Message-ID: <{tag}.{i}.{n}@mail.example.org>\r\nDate: Mon, 6 May 2024 09:{mm:02}:00 +0200\r\nFrom: {from} <{f}@example.org>\r\nTo: {to} <{t}@example.com>\r\n\
             Subject: {subject}\r\nMIME-Version: 1.0\r\n",
            f = addr(from),
            t = addr(to),
            r = self.rng.below(250),
            mm = self.rng.below(60),
            n = self.rng.next(),
        )
    }

    /// One message of 5-50 KB: 55% plain text or text+HTML (5-20 KB), 45% a short text and
    /// an attachment (5-50 KB in all).
    fn message(&mut self, tag: &str, i: usize) -> Vec<u8> {
        let mut m = self.headers(tag, i);
        let kind = self.rng.below(20);
        if kind < 6 {
            let len = 4_500 + self.rng.below(14_000);
            m.push_str(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            );
            m.push_str(&paragraphs(&mut self.rng, len));
        } else if kind < 11 {
            let len = 2_500 + self.rng.below(7_000);
            let body = paragraphs(&mut self.rng, len);
            let html: String = body
                .split("\r\n\r\n")
                .map(|p| {
                    format!("<p style=\"font-family:Arial,sans-serif;font-size:14px\">{p}</p>\r\n")
                })
                .collect();
            m.push_str("Content-Type: multipart/alternative; boundary=\"alt-b\"\r\n\r\n--alt-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body);
            m.push_str("\r\n--alt-b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>");
            m.push_str(&html);
            m.push_str("</body></html>\r\n--alt-b--\r\n");
        } else {
            let len = 500 + self.rng.below(2_500);
            let body = paragraphs(&mut self.rng, len);
            let size = 3_000 + self.rng.below(31_000);
            let a = self.attachment(size);
            m.push_str("Content-Type: multipart/mixed; boundary=\"mix-b\"\r\n\r\n--mix-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
            m.push_str(&body);
            m.push_str(&format!(
                "\r\n--mix-b\r\nContent-Type: {ct}; name=\"{n}\"\r\nContent-Disposition: attachment; filename=\"{n}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                ct = a.content_type,
                n = a.name
            ));
            m.push_str(&base64_wrapped(&a.bytes));
            m.push_str("--mix-b--\r\n");
        }
        m.into_bytes()
    }

    /// A 48.8 MB message: a short text and a 35.6 MB attachment, base64.
    fn large(&mut self, i: usize) -> Vec<u8> {
        let mut m = self.headers("large", i);
        let bytes = self.noise(35_600_000);
        m.push_str("Content-Type: multipart/mixed; boundary=\"big-b\"\r\n\r\n--big-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scans, as promised.\r\n");
        m.push_str(&format!("--big-b\r\nContent-Type: application/zip; name=\"scans-{i}.zip\"\r\nContent-Disposition: attachment; filename=\"scans-{i}.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
        m.push_str(&base64_wrapped(&bytes));
        m.push_str("--big-b--\r\n");
        m.into_bytes()
    }
}

/// The copy delivered to recipient `r`: the MTA adds its own trace headers on top.
fn delivered_copy(original: &[u8], r: usize) -> Vec<u8> {
    let mut m = format!(
        "Delivered-To: user{r}@example.com\r\nReceived: from mx.example.com by store{r}.example.com with LMTP id r{r}q; Mon, 6 May 2024 09:10:{s:02} +0200\r\n",
        s = r % 60
    )
    .into_bytes();
    m.extend_from_slice(original);
    m
}

// ---- measuring from outside ----------------------------------------------------------------

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// /proc/PID/stat fields after the command name: [0] state, [1] ppid, [11] utime, [12] stime,
/// [13] cutime, [14] cstime.
fn stat(pid: i32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// Clock ticks per second for /proc times (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

/// CPU-seconds used so far by the postmaster, its live processes and its reaped ones.
fn postgres_cpu(postmaster: i32) -> f64 {
    let mut ticks = stat(postmaster).map_or(0, |f| f[11] + f[12] + f[13] + f[14]);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(f) = stat(pid).filter(|f| f.get(1) == Some(&(postmaster as u64))) {
            ticks += f[11] + f[12];
        }
    }
    ticks as f64 / HZ
}

fn vm_hwm_mb(pid: i32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

struct Measured {
    wall: f64,
    daygle_cpu: f64,
    pg_cpu: f64,
    peak_mb: f64,
    output: String,
}

/// Runs `cmd` to its end; its CPU time is read from /proc while it is a zombie (waitid with
/// WNOWAIT), its peak RSS polled (VmHWM only grows, so the last reading is the peak but for
/// the final few milliseconds).
fn measure(mut cmd: Command, postmaster: i32, log: &Path) -> Measured {
    let out = File::create(log).expect("log");
    cmd.stdout(out.try_clone().expect("log")).stderr(out);
    let pg_before = postgres_cpu(postmaster);
    let started = Instant::now();
    let mut child: Child = cmd.spawn().expect("run daygle");
    let pid = child.id() as i32;
    let mut peak = 0.0f64;
    loop {
        if let Some(mb) = vm_hwm_mb(pid) {
            peak = peak.max(mb);
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => break,
            Err(e) => panic!("waitid: {e}"),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let daygle_cpu = stat(pid).map_or(0, |f| f[11] + f[12] + f[13] + f[14]) as f64 / HZ;
    let status = child.wait().expect("wait");
    let pg_cpu = postgres_cpu(postmaster) - pg_before;
    let output = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "daygle failed: {output}");
    Measured {
        wall,
        daygle_cpu,
        pg_cpu,
        peak_mb: peak,
        output,
    }
}

/// Bytes on disk of the archive tables (with their indexes and TOAST) and of the database.
async fn sizes(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint
                   FROM unnest(ARRAY['blobs', 'messages', 'attachments', 'parts', 'blob_parts']) t
                  WHERE to_regclass(t) IS NOT NULL),
                pg_database_size(current_database())",
    )
    .fetch_one(pool)
    .await
    .expect("sizes")
}

struct Bench {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    cluster: Cluster,
    postmaster: i32,
    pool: PgPool,
    dovecot: dovecot::Dovecot,
    perf: Option<PathBuf>,
}

impl Bench {
    fn daygle(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_daygle"));
        if let Some(dir) = &self.perf {
            cmd = Command::new("perf");
            cmd.args(["record", "-F", "999", "-g", "-o"])
                .arg(dir.join(format!("{}-daygle.data", args.join("-").replace('/', "_"))))
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_daygle"));
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("DAYGLE") || key == "DATABASE_URL" || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        // BENCH_ATTACHMENT_MIN_BYTES: storage.attachment_min_bytes (0: messages stored whole).
        if let Ok(v) = std::env::var("BENCH_ATTACHMENT_MIN_BYTES") {
            cmd.env("DAYGLE__STORAGE__ATTACHMENT_MIN_BYTES", v);
        }
        cmd.current_dir(self.dir.path())
            .env("DAYGLE__STORAGE__DATA_DIR", &self.data_dir)
            .env("DAYGLE__LOGGING__LEVEL", "warn")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs an unmeasured setup command, feeding `stdin`.
    fn setup(&self, args: &[&str], stdin: &str) {
        let mut cmd = self.daygle(args);
        if self.perf.is_some() {
            cmd = Command::new(env!("CARGO_BIN_EXE_daygle"));
            cmd.env("DAYGLE__STORAGE__DATA_DIR", &self.data_dir)
                .env_remove("DATABASE_URL")
                .current_dir(self.dir.path())
                .args(args);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daygle");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin");
        let out = child.wait_with_output().expect("daygle");
        assert!(
            out.status.success(),
            "daygle {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An IMAP account for Dovecot user `user`, with Dovecot's indexes built beforehand (its
    /// first look at new folders is not ours to measure).
    fn account(&self, name: &str, user: &str) {
        let port = self.dovecot.port.to_string();
        self.setup(
            &[
                "account",
                "add",
                "--name",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--tls",
                "none",
                "--username",
                user,
            ],
            &format!("{user}-pw\n"),
        );
        self.setup(&["account", "test", name], "");
    }

    /// Runs one measured command and prints its figures.
    async fn phase(&self, shape: &str, args: &[&str], messages: usize, raw: u64) -> Measured {
        let (tables_before, db_before) = sizes(&self.pool).await;
        let all = self.perf.as_ref().map(|dir| {
            Command::new("perf")
                .args(["record", "-F", "499", "-g", "-a", "-o"])
                .arg(dir.join(format!("{shape}-all.data")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf")
        });
        let load_before = load();
        let log = self.dir.path().join(format!("{shape}.log"));
        let m = measure(self.daygle(args), self.postmaster, &log);
        let load_after = load();
        if let Some(p) = all {
            let _ = nix::sys::signal::kill(
                Pid::from_raw(p.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = p.wait_with_output();
        }
        let (tables_after, db_after) = sizes(&self.pool).await;
        let n = messages as f64;
        let raw_mb = raw as f64 / 1e6;
        println!(
            "{shape}: {messages} messages, {raw_mb:.1} MB ({:.1} KB mean) in {:.2} s = {:.0} msg/s, {:.1} MB/s  [load before {load_before} / after {load_after}]",
            raw as f64 / n / 1024.0,
            m.wall,
            n / m.wall,
            raw_mb / m.wall
        );
        println!(
            "{shape}:   CPU {:.2} s = {:.3} ms/msg: daygle {:.2} s ({:.3} ms/msg), PostgreSQL {:.2} s ({:.3} ms/msg)  [load {load_after}]",
            m.daygle_cpu + m.pg_cpu,
            (m.daygle_cpu + m.pg_cpu) * 1e3 / n,
            m.daygle_cpu,
            m.daygle_cpu * 1e3 / n,
            m.pg_cpu,
            m.pg_cpu * 1e3 / n
        );
        println!(
            "{shape}:   peak RSS of daygle {:.0} MB{}  [load {load_after}]",
            m.peak_mb,
            if self.perf.is_some() {
                " (of perf: BENCH_PERF is set)"
            } else {
                ""
            }
        );
        let tables = (tables_after - tables_before) as f64;
        let db = (db_after - db_before) as f64;
        println!(
            "{shape}:   stored: archive tables +{:.1} MB = {:.3} x raw, database +{:.1} MB = {:.3} x raw",
            tables / 1e6,
            tables / raw as f64,
            db / 1e6,
            db / raw as f64
        );
        if let Some(last) = m.output.lines().rev().find(|l| !l.trim().is_empty()) {
            println!("{shape}:   daygle said: {last}");
        }
        m
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let shapes = std::env::var("BENCH_SHAPES").unwrap_or("typical,import,large,fanout".into());
    let wants = |s: &str| shapes.split(',').any(|x| x.trim() == s);
    let perf = std::env::var_os("BENCH_PERF").map(PathBuf::from);
    if let Some(dir) = &perf {
        std::fs::create_dir_all(dir).expect("perf dir");
    }
    println!(
        "machine: {} cores, load {}; storage.attachment_min_bytes {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load(),
        std::env::var("BENCH_ATTACHMENT_MIN_BYTES").unwrap_or("default".into())
    );

    // The cluster runs as `postgres` when we are root: it must reach the data directory.
    let dir = tempfile::tempdir().expect("dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let root = daygle::db::embedded_root(&data_dir);
    let cluster = Cluster::new(&root, "", "postgres").expect("cluster");
    // This process owns the cluster (as `serve` would), so the measured commands find it
    // running and leave it so; it stops when the lease is dropped at the end.
    let lease = cluster
        .acquire(Tenure::Server)
        .expect("start the private cluster");
    let postmaster = cluster.postmaster_pid().expect("postmaster pid");
    let admin = cluster.connect_options("postgres");
    daygle::db::cluster::wait_until_accepting(&admin)
        .await
        .expect("cluster up");
    daygle::db::create_database_if_missing(&admin, daygle::db::EMBEDDED_DATABASE)
        .await
        .expect("database");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(cluster.connect_options(daygle::db::EMBEDDED_DATABASE));
    let dovecot = dovecot::Dovecot::start();
    let bench = Bench {
        dir,
        data_dir,
        cluster,
        postmaster,
        pool,
        dovecot,
        perf,
    };
    bench.setup(&["migrate"], "");

    if wants("typical") {
        bench.dovecot.add_user("bench", "bench-pw");
        let mut generator = Generator::new(0x9E37_79B9_7F4A_7C15);
        let mut raw = 0u64;
        for (folder, count) in [
            ("INBOX", n * 6 / 10),
            ("Archive/2024", n * 3 / 10),
            ("Sent", n - n * 9 / 10),
        ] {
            let mut batch = Vec::with_capacity(500);
            for i in 0..count {
                let m = generator.message(folder, i);
                raw += m.len() as u64;
                batch.push(m);
                if batch.len() == 500 {
                    bench
                        .dovecot
                        .write_messages("bench", folder, &batch, Duration::ZERO);
                    batch.clear();
                }
            }
            bench
                .dovecot
                .write_messages("bench", folder, &batch, Duration::ZERO);
        }
        println!(
            "typical mailbox: {n} messages, {:.1} MB, {} with an attachment ({:.0}%), {} of those re-sent",
            raw as f64 / 1e6,
            generator.attachments,
            generator.attachments as f64 * 100.0 / n as f64,
            generator.resent
        );
        bench.account("Bench", "bench");
        bench
            .phase("typical", &["sync", "--once", "--account", "Bench"], n, raw)
            .await;
    }

    if wants("import") {
        let mut generator = Generator::new(0x1234_5678_9ABC_DEF1);
        let path = bench.dir.path().join("import.mbox");
        let mut raw = 0u64;
        {
            let mut f = std::io::BufWriter::new(File::create(&path).expect("mbox"));
            for i in 0..n {
                let m = generator.message("mbox", i);
                raw += m.len() as u64;
                f.write_all(b"From bench@example.org Mon May  6 09:00:00 2024\n")
                    .expect("w");
                // mboxrd: body lines starting with "From " are escaped, as mail clients do.
                let escaped = String::from_utf8_lossy(&m).replace("\nFrom ", "\n>From ");
                f.write_all(escaped.as_bytes()).expect("w");
                f.write_all(b"\n").expect("w");
            }
        }
        let p = path.display().to_string();
        bench
            .phase(
                "import",
                &["import", "--account", "Bench import", &p],
                n,
                raw,
            )
            .await;
    }

    if wants("large") {
        bench.dovecot.add_user("large", "large-pw");
        let mut generator = Generator::new(7);
        let mut raw = 0u64;
        for i in 0..3 {
            let m = generator.large(i);
            raw += m.len() as u64;
            bench
                .dovecot
                .write_messages("large", "INBOX", &[m], Duration::ZERO);
        }
        bench.account("Large", "large");
        bench
            .phase("large", &["sync", "--once", "--account", "Large"], 3, raw)
            .await;
    }

    if wants("fanout") {
        bench.dovecot.add_user("fanout", "fanout-pw");
        let mut generator = Generator::new(0xFACE_FEED);
        let (mut raw, mut batch) = (0u64, Vec::new());
        for i in 0..250 {
            let original = generator.message("fanout", i);
            for r in 0..20 {
                let copy = delivered_copy(&original, r);
                raw += copy.len() as u64;
                batch.push(copy);
            }
            if batch.len() >= 500 {
                bench
                    .dovecot
                    .write_messages("fanout", "INBOX", &batch, Duration::ZERO);
                batch.clear();
            }
        }
        bench
            .dovecot
            .write_messages("fanout", "INBOX", &batch, Duration::ZERO);
        println!(
            "fanout mailbox: 250 messages x 20 recipients, {:.1} MB, {} of the 250 with an attachment",
            raw as f64 / 1e6,
            generator.attachments
        );
        bench.account("Fanout", "fanout");
        bench
            .phase(
                "fanout",
                &["sync", "--once", "--account", "Fanout"],
                5_000,
                raw,
            )
            .await;
    }

    if wants("verify") {
        let (messages, raw): (i64, i64) =
            sqlx::query_as("SELECT count(*), coalesce(sum(size), 0)::bigint FROM messages")
                .fetch_one(&bench.pool)
                .await
                .expect("archive size");
        let runs: usize = std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        for run in 1..=runs {
            let m = bench
                .phase(
                    &format!("verify {run}"),
                    &["verify", "archive"],
                    messages as usize,
                    raw as u64,
                )
                .await;
            let gb = raw as f64 / 1e9;
            println!(
                "verify {run}:   CPU per GB of raw mail: daygle {:.2} s, PostgreSQL {:.2} s, total {:.2} s = {:.0} MB/s on two free cores",
                m.daygle_cpu / gb,
                m.pg_cpu / gb,
                (m.daygle_cpu + m.pg_cpu) / gb,
                2.0 * 1e3 / ((m.daygle_cpu + m.pg_cpu) / gb),
            );
        }
    }

    bench.pool.close().await;
    let _ = &bench.cluster;
    drop(lease);
}
