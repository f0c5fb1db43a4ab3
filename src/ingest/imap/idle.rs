//! IDLE on INBOX (RFC 2177): one extra connection per watched account waits for the server to
//! announce new mail and then wakes the scheduler, which runs an ordinary pass for the account
//! (its lock, its batches, its position moving only with its rows). A watcher never stores
//! anything itself. IDLE is ended and issued again every `sync.idle_renew_secs` (servers may
//! drop an IDLE after 30 minutes); a dropped connection is opened again with a growing pause,
//! and the account is woken after a reconnect in case mail came meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Endpoint, ImapError, Timeouts, timed};
use crate::config::SyncSettings;
use crate::error::Result;
use crate::ingest::accounts::Account;
use crate::secrets::Keys;

/// Longest pause between reconnect attempts.
const MAX_RECONNECT_SECS: u64 = 300;

/// What a watcher was started with; a change (new server, password, flag setting) restarts it.
#[derive(PartialEq, Eq)]
struct Basis {
    endpoint: super::super::accounts::Endpoint,
    password_sealed: Option<String>,
    follow_flags: bool,
    renew_secs: u64,
}

impl Basis {
    fn of(a: &Account, s: &SyncSettings) -> Self {
        Self {
            endpoint: a.endpoint(),
            password_sealed: a.password_sealed.clone(),
            follow_flags: a.follow_flags,
            renew_secs: s.idle_renew_secs,
        }
    }
}

struct Watch {
    basis: Basis,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The running watchers of one scheduler; each sends its account id on the wake channel when
/// the server reports new mail.
pub struct Watchers {
    running: HashMap<i64, Watch>,
    wake: mpsc::UnboundedSender<i64>,
}

impl Watchers {
    /// The watchers and the receiving end of their wake-ups.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<i64>) {
        let (wake, rx) = mpsc::unbounded_channel();
        (
            Self {
                running: HashMap::new(),
                wake,
            },
            rx,
        )
    }

    /// Runs a watcher for exactly the accounts in `wanted` (enabled IMAP accounts that IDLE and
    /// that this process syncs): starts the missing, stops the others, restarts changed ones.
    pub fn reconcile(&mut self, wanted: Vec<Account>, sync: &SyncSettings, keys: &Arc<Keys>) {
        let mut wanted: HashMap<i64, Account> = wanted.into_iter().map(|a| (a.id, a)).collect();
        self.running.retain(|id, w| {
            let keep = !w.task.is_finished()
                && wanted
                    .get(id)
                    .is_some_and(|a| Basis::of(a, sync) == w.basis);
            if !keep {
                w.stop.cancel();
            }
            keep
        });
        for (id, account) in wanted.drain() {
            if self.running.contains_key(&id) {
                continue;
            }
            let stop = CancellationToken::new();
            let basis = Basis::of(&account, sync);
            let task = tokio::spawn(watch(
                account,
                sync.clone(),
                keys.clone(),
                self.wake.clone(),
                stop.clone(),
            ));
            self.running.insert(id, Watch { basis, stop, task });
        }
    }

    /// The accounts being watched.
    pub fn watched(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.running.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Stops every watcher and waits for them.
    pub async fn stop_all(self) {
        for w in self.running.values() {
            w.stop.cancel();
        }
        for (_, w) in self.running {
            let _ = w.task.await;
        }
    }
}

/// Watches one account's INBOX until stopped, reconnecting after failures.
async fn watch(
    account: Account,
    sync: SyncSettings,
    keys: Arc<Keys>,
    wake: mpsc::UnboundedSender<i64>,
    stop: CancellationToken,
) {
    let span = tracing::info_span!("idle", account = %account.name);
    let mut failures: u32 = 0;
    loop {
        let mut connected = false;
        let run = watch_session(&account, &sync, &keys, &wake, failures > 0, &mut connected);
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = tracing::Instrument::instrument(run, span.clone()) => r,
        };
        match result {
            Ok(Ended::Unsupported) => {
                tracing::info!(parent: &span, "the server does not offer IDLE; new mail comes with the next poll");
                return;
            }
            Err(e) => {
                failures = if connected { 1 } else { failures + 1 };
                let pause = reconnect_pause(failures);
                tracing::warn!(parent: &span, error = %crate::error::chain(&e), pause_secs = pause.as_secs(), "IDLE connection lost; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// 1, 2, 4 … seconds, up to [`MAX_RECONNECT_SECS`].
fn reconnect_pause(failures: u32) -> Duration {
    let exp = failures.clamp(1, 10) - 1;
    Duration::from_secs((1u64 << exp).min(MAX_RECONNECT_SECS))
}

enum Ended {
    Unsupported,
}

/// One connection: log in, EXAMINE INBOX, then IDLE in rounds until something fails.
async fn watch_session(
    account: &Account,
    sync: &SyncSettings,
    keys: &Keys,
    wake: &mpsc::UnboundedSender<i64>,
    reconnect: bool,
    connected: &mut bool,
) -> Result<Ended> {
    let t = Timeouts::from_settings(sync);
    let password = account.password(&keys.sealing)?;
    let mut session = super::connect(&Endpoint::of(account)?, &password, t).await?;
    drop(password);
    let caps = timed(t.command, "CAPABILITY", session.capabilities()).await?;
    if !caps.has_str("IDLE") {
        let _ = timed(t.command, "LOGOUT", session.logout()).await;
        return Ok(Ended::Unsupported);
    }
    timed(t.command, "EXAMINE INBOX", session.examine("INBOX")).await?;
    *connected = true;
    if reconnect {
        // Mail that came while the connection was down announced itself to nobody.
        let _ = wake.send(account.id);
    }
    let renew = Duration::from_secs(sync.idle_renew_secs);
    loop {
        let mut idle = session.idle();
        timed(t.command, "IDLE", idle.init()).await?;
        let news = {
            let (wait, _interrupt) = idle.wait_with_timeout(renew);
            // The library's own timeout restarts with every keep-alive; this one does not.
            match tokio::time::timeout(renew, wait).await {
                Ok(Ok(IdleResponse::NewData(data))) => {
                    worth_a_pass(data.parsed(), account.follow_flags)
                }
                Ok(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) | Err(_) => false,
                Ok(Err(e)) => return Err(ImapError::protocol("IDLE", e).into()),
            }
        };
        session = timed(t.command, "DONE", idle.done()).await?;
        if news {
            tracing::debug!(account = %account.name, "new mail announced");
            let _ = wake.send(account.id);
        }
    }
}

/// New mail (EXISTS), or a flag change (FETCH) when the account follows flags.
fn worth_a_pass(response: &Response<'_>, follow_flags: bool) -> bool {
    match response {
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => true,
        Response::Fetch(..) => follow_flags,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_pauses_grow_to_a_ceiling() {
        assert_eq!(reconnect_pause(1), Duration::from_secs(1));
        assert_eq!(reconnect_pause(3), Duration::from_secs(4));
        assert_eq!(reconnect_pause(50), Duration::from_secs(300));
    }
}
