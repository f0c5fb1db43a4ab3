//! The PostgreSQL-native backup for archives too big for dumps, on the embedded default: WAL
//! archiving, a base backup, a named restore point, a destructive mistake, point-in-time
//! recovery. The shell commands are the README's ("Backups"), run verbatim with its paths
//! (`/var/lib/daygle`, `/backup`) pointed at temporary directories; the test fails when the
//! README no longer shows them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::support::outcome;
use crate::common::dovecot::Dovecot;
use crate::common::process::{Server, daygle, shared_tempdir, shell};
use crate::ingest_support::{messages, server_hashes};

/// Once, while `daygle serve` runs; then restart it.
const ENABLE_ARCHIVING: &str = r#"install -d -o postgres -m 0700 /backup/wal
psql -h /var/lib/daygle/postgres -U daygle -d daygle \
     -c "ALTER SYSTEM SET archive_mode = on" \
     -c "ALTER SYSTEM SET archive_command = 'test ! -f /backup/wal/%f && cp %p /backup/wal/%f'""#;

/// Now and then, while `daygle serve` runs.
const BASE_BACKUP: &str =
    "pg_basebackup -h /var/lib/daygle/postgres -U daygle -D /backup/base-$(date +%F) -Ft -z -Xs";

/// Before something risky.
const RESTORE_POINT: &str = r#"psql -h /var/lib/daygle/postgres -U daygle -d daygle \
     -c "SELECT pg_create_restore_point('before-purge')" -c "SELECT pg_switch_wal()""#;

/// With `daygle serve` stopped. The README names the base backup by an example date.
const RECOVER: &str = r#"mv /var/lib/daygle/postgres/data /var/lib/daygle/postgres/data.before-recovery
install -d -o postgres -m 0700 /var/lib/daygle/postgres/data
tar -xzf /backup/base-2026-11-29/base.tar.gz -C /var/lib/daygle/postgres/data
tar -xzf /backup/base-2026-11-29/pg_wal.tar.gz -C /var/lib/daygle/postgres/data/pg_wal
cat >> /var/lib/daygle/postgres/data/postgresql.auto.conf <<'EOF'
restore_command = 'cp /backup/wal/%f %p'
recovery_target_name = 'before-purge'
recovery_target_action = 'promote'
EOF
touch /var/lib/daygle/postgres/data/recovery.signal
chown -R postgres: /var/lib/daygle/postgres/data"#;

const CHECK: &str = "daygle --data-dir /var/lib/daygle verify archive
daygle --data-dir /var/lib/daygle verify audit";

const EXAMPLE_BASE: &str = "/backup/base-2026-11-29";

/// The README's commands with its paths replaced by the test's.
struct Paths<'a> {
    data: &'a Path,
    backup: &'a Path,
}

impl Paths<'_> {
    fn script(&self, commands: &str) -> String {
        let base = std::fs::read_dir(self.backup)
            .expect("backup dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("base-"))
            });
        let mut script = commands.to_string();
        if let Some(base) = base {
            script = script.replace(EXAMPLE_BASE, &base.display().to_string());
        }
        script = script
            .replace("/var/lib/daygle", &self.data.display().to_string())
            .replace("/backup", &self.backup.display().to_string());
        if !nix::unistd::Uid::effective().is_root() {
            // Not root: the private cluster runs as this user.
            let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
                .ok()
                .flatten()
                .expect("current user")
                .name;
            script = script
                .replace("-o postgres", &format!("-o {me}"))
                .replace("postgres:", &format!("{me}:"));
        }
        script
    }

    /// Runs README commands; panics with their output when they fail.
    fn run(&self, commands: &str) -> String {
        let out = shell(self.data.parent().expect("parent"), &self.script(commands))
            .output()
            .expect("run sh");
        let (code, text) = outcome(&out);
        assert_eq!(code, Some(0), "{commands}\n{text}");
        text
    }
}

fn readme_shows(commands: &str) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(commands),
        "README.md (Backups) no longer shows the commands this test runs:\n{commands}"
    );
}

/// `daygle --data-dir DATA ARGS`, exit code 0 expected.
fn daygle_ok(data: &Path, args: &[&str]) -> String {
    let out = daygle(data.parent().expect("parent"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run daygle");
    let (code, text) = outcome(&out);
    assert_eq!(code, Some(0), "daygle {args:?}: {text}");
    text
}

/// A pool on the private cluster under `data` (its socket; the test runs as its owner or root).
fn cluster_pool(data: &Path) -> PgPool {
    let options = PgConnectOptions::new()
        .socket(data.join("postgres"))
        .port(5432)
        .username("daygle")
        .database("daygle");
    PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(options)
}

/// uid → hex SHA-256 of every archived copy.
async fn archived(data: &Path) -> BTreeMap<i64, String> {
    let pool = cluster_pool(data);
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT uid, blob_sha256 FROM messages")
        .fetch_all(&pool)
        .await
        .expect("archived messages");
    pool.close().await;
    rows.into_iter().map(|(u, h)| (u, hex::encode(h))).collect()
}

fn serve(dir: &Path, data: &Path) -> Server {
    // The web role only: the test syncs with `sync --once` when it chooses.
    Server::start(dir, data, &[("DAYGLE__SERVER__ROLE", "web")])
}

fn stop(server: Server) {
    server.signal(Signal::SIGTERM);
    let (code, log) = server.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "serve stopped: {}", log.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_backup_and_archived_wal_bring_the_archive_back_to_a_named_restore_point() {
    for commands in [ENABLE_ARCHIVING, BASE_BACKUP, RESTORE_POINT, RECOVER, CHECK] {
        readme_shows(commands);
    }
    let dovecot = tokio::task::spawn_blocking(Dovecot::start)
        .await
        .expect("dovecot");
    dovecot.add_user("alice", "alice-pw");
    dovecot.write_messages("alice", "INBOX", &messages("early", 15), Duration::ZERO);
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let backup = shared_tempdir();
    let paths = Paths {
        data: &data,
        backup: backup.path(),
    };

    let server = serve(dir.path(), &data);
    let port = dovecot.port.to_string();
    let mut add = daygle(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["account", "add", "--name", "Alice", "--host", "127.0.0.1"])
        .args(["--port", &port, "--tls", "none", "--username", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("account add");
    add.stdin.take().unwrap().write_all(b"alice-pw\n").unwrap();
    assert!(add.wait().unwrap().success());
    daygle_ok(&data, &["sync", "--once"]);

    // WAL archiving takes effect when serve restarts its cluster.
    paths.run(ENABLE_ARCHIVING);
    stop(server);
    let server = serve(dir.path(), &data);
    paths.run(BASE_BACKUP);

    // More mail after the base backup: it comes back from the archived WAL alone.
    dovecot.write_messages("alice", "INBOX", &messages("later", 10), Duration::ZERO);
    daygle_ok(&data, &["sync", "--once"]);
    paths.run(RESTORE_POINT);
    let at_target = archived(&data).await;
    assert_eq!(at_target.len(), 25);
    let server_copy = server_hashes(dovecot.port, "alice", "INBOX").await;
    assert_eq!(at_target, server_copy, "archived as the server holds it");

    // The mistake: every message deleted. Then mail that arrives after the restore point.
    let out = daygle_ok(
        &data,
        &[
            "delete",
            "--query",
            "to:alice@example.com",
            "--reason",
            "a mistake",
            "--yes",
        ],
    );
    assert!(out.contains("deleted 25 messages"), "{out}");
    dovecot.write_messages("alice", "INBOX", &messages("after", 5), Duration::ZERO);
    daygle_ok(&data, &["sync", "--once"]);
    assert_eq!(archived(&data).await.len(), 5);
    stop(server);

    let wal: Vec<String> = std::fs::read_dir(backup.path().join("wal"))
        .expect("archived WAL")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!wal.is_empty(), "archive_command copied no WAL");

    paths.run(RECOVER);
    // Without `promote`, PostgreSQL would pause read-only at the target: daygle says so.
    let conf = data.join("postgres/data/postgresql.auto.conf");
    let promote = std::fs::read_to_string(&conf).expect("auto.conf");
    std::fs::write(&conf, promote.replace("'promote'", "'pause'")).unwrap();
    let out = daygle(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .args(["verify", "archive"])
        .output()
        .expect("run daygle");
    let (code, text) = outcome(&out);
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("paused at the recovery target")
            && text.contains("recovery_target_action = 'promote'"),
        "{text}"
    );
    std::fs::write(&conf, promote).unwrap();
    let out = paths.run(CHECK);
    assert!(out.contains("checked 25 messages"), "{out}");
    assert!(
        !paths.data.join("postgres/data/recovery.signal").exists(),
        "recovery finished and PostgreSQL promoted"
    );

    let server = serve(dir.path(), &data);
    assert_eq!(
        archived(&data).await,
        at_target,
        "every message archived at the restore point, hash-equal to the server; none after it"
    );
    // The sync position came back with the rows: the next sync fetches only what is missing.
    let out = daygle_ok(&data, &["sync", "--once"]);
    let now = archived(&data).await;
    assert_eq!(now.len(), 30, "{out}");
    assert_eq!(
        now,
        server_hashes(dovecot.port, "alice", "INBOX").await,
        "{out}"
    );
    stop(server);
    let out = daygle_ok(&data, &["verify", "audit"]);
    assert!(!out.is_empty());
}
