//! The private PostgreSQL cluster as a user meets it: `daygle serve` with no database URL.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::process::{Server, daygle, http_get, postgres_processes, shared_tempdir};

#[test]
fn serve_without_a_database_url_runs_a_private_cluster_and_sigterm_stops_everything() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let started = Instant::now();
    let server = Server::start(dir.path(), &data, &[]);
    eprintln!(
        "first start (initdb included) ready in {:?}",
        started.elapsed()
    );

    let (status, body) = http_get(&format!("{}/readyz", server.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\""));
    assert!(
        !postgres_processes(&data).is_empty(),
        "no PostgreSQL serving {}",
        data.display()
    );
    // The cluster listens on its socket only.
    assert!(data.join("postgres/.s.PGSQL.5432").exists());

    // First run generated both keys, readable only by their owner.
    for key in ["session_key", "sealing_key"] {
        let meta = std::fs::metadata(data.join("secrets").join(key)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{key}");
    }
    let secrets_dir = std::fs::metadata(data.join("secrets")).unwrap();
    assert_eq!(secrets_dir.permissions().mode() & 0o777, 0o700);

    server.signal(Signal::SIGTERM);
    let (code, log) = server.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        postgres_processes(&data).is_empty(),
        "PostgreSQL left running after SIGTERM"
    );
}

#[test]
fn a_second_start_reuses_the_cluster_and_the_keys() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let first = Server::start(dir.path(), &data, &[]);
    let key = std::fs::read_to_string(data.join("secrets/sealing_key")).unwrap();
    first.signal(Signal::SIGINT);
    assert_eq!(first.wait(Duration::from_secs(30)).0, Some(0));

    let started = Instant::now();
    let second = Server::start(dir.path(), &data, &[]);
    eprintln!("later start ready in {:?}", started.elapsed());
    assert_eq!(http_get(&format!("{}/readyz", second.url)).0, 200);
    assert_eq!(
        std::fs::read_to_string(data.join("secrets/sealing_key")).unwrap(),
        key
    );
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(Duration::from_secs(30)).0, Some(0));
    assert!(postgres_processes(&data).is_empty());
}

#[test]
fn after_sigkill_the_next_start_recovers_the_orphaned_cluster() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let crashed = Server::start(dir.path(), &data, &[]);
    crashed.signal(Signal::SIGKILL);
    let _ = crashed.wait(Duration::from_secs(10));
    let orphans = postgres_processes(&data);
    assert!(
        !orphans.is_empty(),
        "expected PostgreSQL to outlive the killed daygle"
    );

    let recovered = Server::start(dir.path(), &data, &[]);
    assert_eq!(http_get(&format!("{}/readyz", recovered.url)).0, 200);
    recovered.signal(Signal::SIGTERM);
    assert_eq!(recovered.wait(Duration::from_secs(30)).0, Some(0));
    assert!(
        postgres_processes(&data).is_empty(),
        "orphaned PostgreSQL still running"
    );
}

#[test]
fn a_stale_postmaster_pid_from_a_dead_cluster_does_not_block_the_start() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let crashed = Server::start(dir.path(), &data, &[]);
    crashed.signal(Signal::SIGKILL);
    let _ = crashed.wait(Duration::from_secs(10));
    // Kill PostgreSQL too, as a power cut would: postmaster.pid stays behind.
    for pid in postgres_processes(&data) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(data.join("postgres/data/postmaster.pid").exists());

    let recovered = Server::start(dir.path(), &data, &[]);
    assert_eq!(http_get(&format!("{}/readyz", recovered.url)).0, 200);
    recovered.signal(Signal::SIGTERM);
    assert_eq!(recovered.wait(Duration::from_secs(30)).0, Some(0));
    assert!(postgres_processes(&data).is_empty());
}

#[test]
fn migrate_uses_a_running_cluster_and_leaves_it_to_serve() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let server = Server::start(dir.path(), &data, &[]);
    let out = daygle(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations:"));
    // serve still has its database.
    assert_eq!(http_get(&format!("{}/readyz", server.url)).0, 200);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn migrate_alone_starts_the_cluster_for_its_duration_only() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let out = daygle(dir.path())
        .arg("--data-dir")
        .arg(&data)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("postgres/data/PG_VERSION").exists());
    assert!(
        postgres_processes(&data).is_empty(),
        "migrate left PostgreSQL running"
    );
}

#[test]
fn missing_postgresql_binaries_are_explained_in_one_line() {
    let dir = shared_tempdir();
    let out = daygle(dir.path())
        .args(["--data-dir", "data", "migrate"])
        .env("DAYGLE__DATABASE__PG_BIN_DIR", "/nonexistent/bin")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(error_lines[0].contains("install PostgreSQL"), "{stderr}");
    assert!(error_lines[0].contains("database.url"), "{stderr}");
}

#[test]
fn as_root_an_unreachable_data_dir_is_explained() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: only meaningful as root (the cluster runs as the postgres user)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = daygle(dir.path())
        .args(["--data-dir", "data", "migrate"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach") && stderr.contains("chmod o+x"),
        "{stderr}"
    );
}

#[test]
fn commands_that_fail_early_leave_no_postgresql_behind() {
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    // Something else already listens where `serve` is told to: App::build fails at bind,
    // after it has started the cluster and migrated.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let attempts: [(&str, Vec<&str>); 7] = [
        (
            "user create with no password",
            vec!["user", "create", "bob"],
        ),
        (
            "reset of an unknown user",
            vec!["user", "reset-password", "nobody"],
        ),
        (
            "enable an unknown account",
            vec!["account", "enable", "nosuch"],
        ),
        (
            "sync an unknown account",
            vec!["sync", "--once", "--account", "nosuch"],
        ),
        (
            "import of a missing path",
            vec!["import", "--account", "old", "/nonexistent/mail"],
        ),
        (
            "export of an unknown account",
            vec![
                "export",
                "--account",
                "nosuch",
                "--format",
                "mbox",
                "--output",
                "out.mbox",
            ],
        ),
        ("serve on a taken address", vec!["serve", "--bind", &taken]),
    ];
    for (what, args) in attempts {
        let out = daygle(dir.path())
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{what}: expected a failure\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            postgres_processes(&data).is_empty(),
            "{what} left PostgreSQL running\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !dir.path().join("out.mbox").exists(),
        "a failed export leaves no file"
    );
}

#[test]
fn as_root_a_first_start_from_a_private_home_works_without_loosening_it() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: only meaningful as root (the cluster runs as the postgres user)");
        return;
    }
    // A clone under /root: a 0700 directory the postgres user cannot traverse.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let clone = home.path().join("daygle");
    std::fs::create_dir(&clone).unwrap();
    // Where root's data goes without a configured data dir: /var/lib/daygle, or (as here, so
    // parallel test runs do not share it) systemd's STATE_DIRECTORY.
    let state = shared_tempdir();
    let state_dir = state.path().join("daygle");

    let server = Server::start_plain(&clone, &[("STATE_DIRECTORY", state_dir.to_str().unwrap())]);
    assert_eq!(
        server.data_dir.as_deref(),
        Some(state_dir.to_str().unwrap()),
        "the data directory is printed at start"
    );
    let (status, body) = http_get(&format!("{}/readyz", server.url));
    assert_eq!(status, 200, "{body}");
    assert!(!postgres_processes(&state_dir).is_empty());
    assert!(state_dir.join("secrets/sealing_key").exists());
    assert!(
        !clone.join("data").exists(),
        "nothing written into the clone"
    );
    let mode = std::fs::metadata(home.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the private home was loosened");

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait(Duration::from_secs(30)).0, Some(0));
    assert!(postgres_processes(&state_dir).is_empty());
}
