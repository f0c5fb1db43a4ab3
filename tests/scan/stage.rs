//! The pipeline's scan stage on whole batches, against a real clamd.

use daygle::config::ClamavSettings;
use daygle::scan::{Disposition, ScanStage, ScanStatus, Scanner};

use super::samples;
use crate::common::clamd::Clamd;

fn stage(settings: &ClamavSettings) -> ScanStage {
    ScanStage::new(Scanner::new(settings), settings)
}

fn store(status: ScanStatus) -> Disposition {
    Disposition::Store {
        status,
        virus_name: None,
    }
}

#[tokio::test]
async fn a_batch_gets_one_decision_per_message_following_the_action() {
    let clamd = Clamd::spawn();
    let batch = [
        samples::clean(),
        samples::eicar_base64_attachment(),
        samples::clean_of_size(200 * 1024),
    ];
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    for (action, expected) in [
        ("quarantine", "quarantine"),
        ("flag", "flag"),
        ("reject", "reject"),
    ] {
        let settings = ClamavSettings {
            action: action.into(),
            max_scan_bytes: 100 * 1024,
            ..clamd.settings()
        };
        let screened = stage(&settings).screen(&refs).await;
        assert_eq!(screened.held, None);
        assert_eq!(screened.dispositions.len(), 3);
        assert_eq!(screened.dispositions[0], store(ScanStatus::Clean));
        assert_eq!(screened.dispositions[2], store(ScanStatus::TooLarge));
        let infected = &screened.dispositions[1];
        let ok = match (expected, infected) {
            ("quarantine", Disposition::Quarantine { virus_name }) => {
                virus_name.starts_with("Eicar")
            }
            (
                "flag",
                Disposition::Store {
                    status: ScanStatus::Infected,
                    virus_name: Some(v),
                },
            ) => v.starts_with("Eicar"),
            ("reject", Disposition::Reject { virus_name }) => virus_name.starts_with("Eicar"),
            _ => false,
        };
        assert!(ok, "action {action} gave {infected:?}");
    }
}

#[tokio::test]
async fn with_clamd_down_the_batch_is_held_at_its_first_message_and_the_outage_reported_once() {
    let mut clamd = Clamd::spawn();
    let settings = clamd.settings();
    let stage = ScanStage::new(Scanner::new(&settings), &settings);
    let outage = stage.scanner.outage().clone();
    clamd.stop();
    let batch = [samples::clean(), samples::clean()];
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let screened = stage.screen(&refs).await;
    assert!(screened.dispositions.is_empty(), "{screened:?}");
    let (index, reason) = screened.held.expect("held");
    assert_eq!(index, 0);
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(outage.is_down());
    assert!(
        !outage.scan_failed("again"),
        "the outage was already reported"
    );

    clamd.start();
    let screened = stage.screen(&refs).await;
    assert_eq!(screened.held, None);
    assert_eq!(screened.dispositions, vec![store(ScanStatus::Clean); 2]);
    assert!(!outage.is_down());
}

#[tokio::test]
async fn with_archive_unscanned_on_a_clamd_outage_stores_mail_as_pending_never_clean() {
    let mut clamd = Clamd::spawn();
    let settings = ClamavSettings {
        archive_unscanned: true,
        ..clamd.settings()
    };
    let stage = stage(&settings);
    clamd.stop();
    let batch = [samples::clean(), samples::eicar_in_plain_body()];
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let screened = stage.screen(&refs).await;
    assert_eq!(screened.held, None);
    assert_eq!(screened.dispositions, vec![store(ScanStatus::Pending); 2]);
    assert!(stage.scanner.outage().is_down());
}
