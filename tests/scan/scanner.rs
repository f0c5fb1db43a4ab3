//! What the scanner reports for real messages, from a real clamd.

use daygle::config::ClamavSettings;
use daygle::scan::{Scanner, Verdict};

use super::samples;
use crate::common::clamd::Clamd;

fn assert_infected(verdict: &Verdict) {
    match verdict {
        Verdict::Infected { signature } => assert!(
            signature.starts_with("Eicar-Test-Signature"),
            "unexpected signature {signature}"
        ),
        other => panic!("expected an EICAR detection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_clean_message_is_reported_clean() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    assert_eq!(scanner.scan(&samples::clean()).await, Verdict::Clean);
}

#[tokio::test]
async fn eicar_in_a_base64_attachment_is_found_with_its_signature_name() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    assert_infected(&scanner.scan(&samples::eicar_base64_attachment()).await);
}

#[tokio::test]
async fn eicar_inline_in_a_body_or_a_quoted_printable_part_is_found() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    assert_infected(&scanner.scan(&samples::eicar_in_plain_body()).await);
    assert_infected(&scanner.scan(&samples::eicar_quoted_printable_part()).await);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_too_large_and_never_sent_to_clamd() {
    let mut clamd = Clamd::spawn();
    let settings = ClamavSettings {
        max_scan_bytes: 64 * 1024,
        ..clamd.settings()
    };
    let scanner = Scanner::new(&settings);
    let big = samples::clean_of_size(100 * 1024);
    // With clamd gone, any attempt to contact it would be an Error, not TooLarge.
    clamd.stop();
    assert_eq!(
        scanner.scan(&big).await,
        Verdict::TooLarge {
            size: big.len() as u64
        }
    );
}

#[tokio::test]
async fn with_clamd_stopped_a_scan_is_an_error_never_clean_and_clean_again_once_it_is_back() {
    let mut clamd = Clamd::spawn();
    let scanner = Scanner::new(&clamd.settings());
    clamd.stop();
    let message = samples::clean();
    let verdict = scanner.scan(&message).await;
    assert_eq!(verdict.label(), "error", "got {verdict:?}");
    assert!(!verdict.is_final());
    assert!(scanner.ping().await.is_err());
    clamd.start();
    assert_eq!(scanner.scan(&message).await, Verdict::Clean);
}

#[tokio::test]
async fn a_scan_that_gets_no_answer_in_time_is_an_error() {
    // A listener that accepts and never answers: what a wedged clamd looks like.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let scanner = Scanner::new(&ClamavSettings {
        enabled: true,
        address,
        timeout_secs: 1,
        ..ClamavSettings::default()
    });
    let verdict = scanner.scan(&samples::clean()).await;
    assert_eq!(verdict.label(), "error", "got {verdict:?}");
    assert!(
        verdict.to_string().contains("no verdict within 1 s"),
        "{verdict}"
    );
    hold.abort();
}

#[tokio::test]
async fn tcp_and_the_unix_socket_give_the_same_verdicts() {
    let clamd = Clamd::spawn();
    let over_socket = Scanner::new(&ClamavSettings {
        address: clamd.socket_path().display().to_string(),
        ..clamd.settings()
    });
    let over_tcp = Scanner::new(&clamd.settings());
    for scanner in [&over_tcp, &over_socket] {
        assert_eq!(scanner.scan(&samples::clean()).await, Verdict::Clean);
        assert_infected(&scanner.scan(&samples::eicar_base64_attachment()).await);
        scanner.ping().await.expect("PING answers");
        let version = scanner.version().await.expect("VERSION answers");
        assert!(version.starts_with("ClamAV 1."), "{version}");
    }
}

#[tokio::test]
async fn many_scans_at_once_each_get_their_own_verdict() {
    let clamd = Clamd::spawn();
    let scanner = Scanner::new(&ClamavSettings {
        concurrency: 3,
        ..clamd.settings()
    });
    let mut tasks = Vec::new();
    for i in 0..24 {
        let scanner = scanner.clone();
        tasks.push(tokio::spawn(async move {
            let infected = i % 4 == 0;
            let message = if infected {
                samples::eicar_base64_attachment()
            } else {
                samples::clean()
            };
            (infected, scanner.scan(&message).await)
        }));
    }
    for task in tasks {
        let (infected, verdict) = task.await.unwrap();
        if infected {
            assert_infected(&verdict);
        } else {
            assert_eq!(verdict, Verdict::Clean);
        }
    }
}
