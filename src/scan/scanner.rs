//! The clamd client: INSTREAM scans with a size check, a timeout and bounded concurrency.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clamav_client::tokio::{Socket, Tcp};
use tokio::sync::Semaphore;

use super::outage::Outage;
use super::verdict::{Verdict, parse_reply};
use crate::config::ClamavSettings;

/// INSTREAM chunk size. clamav-client's default is 4 KiB; larger chunks mean fewer writes for
/// the typical 20-200 KB message and made no difference to clamd.
const CHUNK_BYTES: usize = 64 * 1024;

/// PING and VERSION are tiny; they get a short fixed timeout so a health check never hangs.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// How clamd is reached. clamav-client's `Tcp` and `Socket` are different generic types, so
/// the choice made from the configured address at run time lives in this enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp(String),
    Socket(PathBuf),
}

impl Transport {
    /// An absolute path is a unix socket; anything else is `host:port`.
    pub fn from_address(address: &str) -> Self {
        let address = address.trim();
        if address.starts_with('/') {
            Transport::Socket(PathBuf::from(address))
        } else {
            Transport::Tcp(address.to_string())
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(addr) => write!(f, "tcp://{addr}"),
            Transport::Socket(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// clamd did not answer a control command (PING, VERSION).
#[derive(Debug, thiserror::Error)]
#[error("clamd at {address} {reason}")]
pub struct ScannerUnavailable {
    pub address: String,
    pub reason: String,
}

/// A handle on clamd. Cheap to clone; clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Scanner {
    transport: Transport,
    timeout: Duration,
    max_scan_bytes: u64,
    permits: Arc<Semaphore>,
    /// Shared by clones, so one outage is reported once however many tasks scan.
    outage: Outage,
}

impl Scanner {
    pub fn new(settings: &ClamavSettings) -> Self {
        Self {
            transport: Transport::from_address(&settings.address),
            timeout: Duration::from_secs(settings.timeout_secs.max(1)),
            max_scan_bytes: settings.max_scan_bytes,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            outage: Outage::default(),
        }
    }

    /// The scanner for these settings, or `None` when scanning is switched off.
    pub fn from_settings(settings: &ClamavSettings) -> Option<Self> {
        settings.enabled.then(|| Self::new(settings))
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn max_scan_bytes(&self) -> u64 {
        self.max_scan_bytes
    }

    /// Whether clamd is currently known to be unreachable.
    pub fn outage(&self) -> &Outage {
        &self.outage
    }

    /// Scans one message. Waits for a free slot when `concurrency` scans are already
    /// running; the timeout covers the clamd conversation, not the wait.
    ///
    /// Never returns `Clean` unless clamd replied `stream: OK`.
    pub async fn scan(&self, message: &[u8]) -> Verdict {
        let size = message.len() as u64;
        // clamd answers an over-long stream by closing the socket (a broken pipe here, not a
        // reply), so the size limit is enforced before clamd is contacted.
        let verdict = if size > self.max_scan_bytes {
            Verdict::TooLarge { size }
        } else {
            match self.permits.acquire().await {
                Ok(_permit) => self.scan_now(message).await,
                Err(_) => Verdict::error("scanner is shutting down"),
            }
        };
        metrics::counter!("scan_verdicts_total", "verdict" => verdict.label()).increment(1);
        match &verdict {
            Verdict::Clean | Verdict::Infected { .. } => {
                self.outage.scan_succeeded();
            }
            Verdict::Error { reason } => {
                self.outage.scan_failed(reason);
            }
            // Never sent to clamd: says nothing about its health.
            Verdict::TooLarge { .. } => {}
        }
        verdict
    }

    async fn scan_now(&self, message: &[u8]) -> Verdict {
        let started = Instant::now();
        let reply = tokio::time::timeout(self.timeout, async {
            match &self.transport {
                Transport::Tcp(addr) => {
                    clamav_client::tokio::scan_buffer(
                        message,
                        Tcp {
                            host_address: addr.as_str(),
                        },
                        Some(CHUNK_BYTES),
                    )
                    .await
                }
                Transport::Socket(path) => {
                    clamav_client::tokio::scan_buffer(
                        message,
                        Socket {
                            socket_path: path.as_path(),
                        },
                        Some(CHUNK_BYTES),
                    )
                    .await
                }
            }
        })
        .await;
        metrics::histogram!("scan_duration_seconds").record(started.elapsed().as_secs_f64());
        match reply {
            Ok(Ok(reply)) => parse_reply(&reply),
            Ok(Err(e)) => Verdict::error(format!("clamd at {} unreachable: {e}", self.transport)),
            Err(_) => Verdict::error(format!(
                "clamd at {} gave no verdict within {} s",
                self.transport,
                self.timeout.as_secs()
            )),
        }
    }

    /// `PONG` from clamd, or why not.
    pub async fn ping(&self) -> Result<(), ScannerUnavailable> {
        let reply = self.control(Command::Ping).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(self.unavailable(format!("answered PING with {reply:?}")))
        }
    }

    /// clamd's version line, e.g. `ClamAV 1.4.6/27490/Mon Nov 23 08:22:01 2026` (engine /
    /// signature database / database date; test databases give only the engine).
    pub async fn version(&self) -> Result<String, ScannerUnavailable> {
        let reply = self.control(Command::Version).await?;
        if reply.starts_with("ClamAV ") {
            Ok(reply)
        } else {
            Err(self.unavailable(format!("answered VERSION with {reply:?}")))
        }
    }

    async fn control(&self, command: Command) -> Result<String, ScannerUnavailable> {
        let call = async {
            match (&self.transport, command) {
                (Transport::Tcp(a), Command::Ping) => {
                    clamav_client::tokio::ping(Tcp { host_address: a }).await
                }
                (Transport::Tcp(a), Command::Version) => {
                    clamav_client::tokio::get_version(Tcp { host_address: a }).await
                }
                (Transport::Socket(p), Command::Ping) => {
                    clamav_client::tokio::ping(Socket { socket_path: p }).await
                }
                (Transport::Socket(p), Command::Version) => {
                    clamav_client::tokio::get_version(Socket { socket_path: p }).await
                }
            }
        };
        match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
            Ok(Ok(reply)) => Ok(String::from_utf8_lossy(&reply)
                .trim_end_matches(['\0', '\n'])
                .to_string()),
            Ok(Err(e)) => Err(self.unavailable(format!("is unreachable: {e}"))),
            Err(_) => Err(self.unavailable(format!(
                "did not answer within {} s",
                CONTROL_TIMEOUT.as_secs()
            ))),
        }
    }

    fn unavailable(&self, reason: String) -> ScannerUnavailable {
        ScannerUnavailable {
            address: self.transport.to_string(),
            reason,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Command {
    Ping,
    Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_path_is_a_unix_socket_and_anything_else_is_tcp() {
        assert_eq!(
            Transport::from_address("/run/clamav/clamd.ctl"),
            Transport::Socket("/run/clamav/clamd.ctl".into())
        );
        assert_eq!(
            Transport::from_address(" clamav:3310 "),
            Transport::Tcp("clamav:3310".into())
        );
    }

    #[tokio::test]
    async fn an_oversized_message_is_too_large_without_contacting_clamd() {
        let settings = ClamavSettings {
            // Nothing listens here: contacting it would give an Error, not TooLarge.
            address: "127.0.0.1:1".into(),
            max_scan_bytes: 1024,
            ..ClamavSettings::default()
        };
        let scanner = Scanner::new(&settings);
        assert_eq!(
            scanner.scan(&[b'a'; 1025]).await,
            Verdict::TooLarge { size: 1025 }
        );
        assert_eq!(scanner.scan(&[b'a'; 1024]).await.label(), "error");
    }
}
