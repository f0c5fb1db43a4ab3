//! `daygle bench scan`, run as an operator would.

use crate::common::clamd::Clamd;
use crate::common::process;

#[test]
fn bench_scan_prints_messages_and_megabytes_per_second_from_a_real_clamd() {
    let clamd = Clamd::spawn();
    let dir = tempfile::tempdir().unwrap();
    let out = process::daygle(dir.path())
        .args([
            "bench",
            "scan",
            "--messages",
            "20",
            "--attachment-bytes",
            "2000",
        ])
        .env("DAYGLE__CLAMAV__ADDRESS", clamd.socket_path())
        .output()
        .expect("run daygle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("20 messages"), "{stdout}");
    assert!(
        stdout.contains("msgs/s") && stdout.contains("MB/s"),
        "{stdout}"
    );
    assert!(stdout.contains("(20 clean)"), "{stdout}");
}

#[test]
fn bench_scan_fails_clearly_when_clamd_is_not_there() {
    let mut clamd = Clamd::spawn();
    clamd.stop();
    let dir = tempfile::tempdir().unwrap();
    let out = process::daygle(dir.path())
        .args(["bench", "scan", "--messages", "5"])
        .env("DAYGLE__CLAMAV__ADDRESS", clamd.tcp_address())
        .output()
        .expect("run daygle");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clamd must be reachable"), "{stderr}");
}
