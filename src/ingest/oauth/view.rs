//! What the account page says about a Gmail or Microsoft 365 account, in words: the source, who
//! is connected, whether its authorisation works, and where each folder's delta position stands.
//! Pure functions over the stored row and `sync_state`; nothing here reads a secret.

use time::OffsetDateTime;

use super::Provider;
use crate::archive::ledger::DeltaPosition;
use crate::ingest::accounts::Account;

/// Whether an account's stored authorisation works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// A person connected it (refresh token stored), or it uses the instance's own credentials.
    Connected,
    /// The provider refused the grant: someone must connect it again.
    NeedsReconnect,
    /// Nobody has connected it yet.
    NeverConnected,
}

impl TokenState {
    pub fn of(account: &Account) -> Self {
        if account.oauth_state == "reconnect" {
            return Self::NeedsReconnect;
        }
        match account.oauth_mode.as_deref() {
            Some("app") => Self::Connected,
            Some("delegated") if account.oauth_refresh_sealed.is_some() => Self::Connected,
            Some("delegated") => Self::NeedsReconnect,
            _ => Self::NeverConnected,
        }
    }

    /// A short word for styling and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReconnect => "reconnect",
            Self::NeverConnected => "never",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReconnect => "needs reconnect",
            Self::NeverConnected => "never connected",
        }
    }
}

/// Where the account's mail comes from, as the page names it.
pub fn source_label(account: &Account) -> &'static str {
    match account.kind.as_str() {
        "gmail" => "Gmail API",
        "graph" => "Microsoft Graph",
        "imap" => "IMAP (password)",
        "import" => "Imported from files",
        _ => "Unknown",
    }
}

/// How the account gets its tokens, in words.
pub fn access_label(account: &Account) -> &'static str {
    match (
        Provider::of_kind(&account.kind),
        account.oauth_mode.as_deref(),
    ) {
        (Some(Provider::Google), Some("app")) => {
            "service account with domain-wide delegation (the instance's own credentials)"
        }
        (Some(Provider::Microsoft), Some("app")) => {
            "application permission, client credentials (the instance's own credentials)"
        }
        (Some(_), _) => "connected by a person in the browser (authorization code with PKCE)",
        (None, _) => "",
    }
}

/// The access token's expiry in words, relative to `now`.
pub fn expiry_text(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let Some(at) = expires_at else {
        return "no access token yet".into();
    };
    let left = (at - now).whole_minutes();
    if left < 0 {
        "expired (a new one is fetched at the next sync)".into()
    } else if left < 1 {
        "expires in less than a minute".into()
    } else {
        format!("expires in {left} min")
    }
}

/// One line per folder: the folder and a short summary of its delta position.
pub fn positions(account: &Account, rows: &[DeltaPosition]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r.folder.clone(), position_text(&account.kind, r)))
        .collect()
}

fn position_text(kind: &str, r: &DeltaPosition) -> String {
    match (kind, r.delta.as_deref(), r.delta_pending.as_deref()) {
        ("gmail", Some(history), _) => format!("following changes from history id {history}"),
        ("gmail", None, Some(start)) => {
            format!("full listing in progress (changes from history id {start} follow)")
        }
        ("graph", Some(_), _) => "following changes (delta link saved)".into(),
        ("graph", None, Some(_)) => "full listing in progress (next page saved)".into(),
        _ => "not listed yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(kind: &str, mode: Option<&str>, sealed: bool, state: &str) -> Account {
        Account {
            id: 1,
            name: "a".into(),
            kind: kind.into(),
            enabled: true,
            host: None,
            port: None,
            tls_mode: None,
            username: None,
            password_sealed: None,
            folders_include: vec![],
            folders_exclude: vec![],
            poll_interval_secs: 60,
            delete_after_days: None,
            expunge: true,
            pinned_cert_sha256: None,
            mailbox: None,
            oauth_mode: mode.map(String::from),
            oauth_refresh_sealed: sealed.then(|| "enc:v1:x".into()),
            oauth_token_url: None,
            oauth_identity: None,
            oauth_state: state.into(),
            oauth_error: None,
            oauth_expires_at: None,
            idle: None,
            follow_flags: false,
        }
    }

    #[test]
    fn token_state_follows_the_stored_row() {
        let s = |m, sealed, st| TokenState::of(&account("gmail", m, sealed, st));
        assert_eq!(s(None, false, "ok"), TokenState::NeverConnected);
        assert_eq!(s(Some("delegated"), true, "ok"), TokenState::Connected);
        assert_eq!(
            s(Some("delegated"), false, "reconnect"),
            TokenState::NeedsReconnect
        );
        assert_eq!(s(Some("app"), false, "ok"), TokenState::Connected);
        assert_eq!(
            s(Some("app"), false, "reconnect"),
            TokenState::NeedsReconnect
        );
    }

    #[test]
    fn positions_are_summarised_per_source() {
        let row = |d: Option<&str>, p: Option<&str>| DeltaPosition {
            folder: "All Mail".into(),
            delta: d.map(String::from),
            delta_pending: p.map(String::from),
        };
        let gmail = account("gmail", Some("delegated"), true, "ok");
        let graph = account("graph", Some("app"), false, "ok");
        assert_eq!(
            positions(&gmail, &[row(Some("1234"), None)])[0].1,
            "following changes from history id 1234"
        );
        assert!(
            positions(&gmail, &[row(None, Some("99"))])[0]
                .1
                .contains("99")
        );
        let link =
            "https://graph.microsoft.com/v1.0/me/mailFolders/x/messages/delta?$deltatoken=abc";
        let text = &positions(&graph, &[row(Some(link), None)])[0].1;
        assert!(!text.contains("deltatoken"), "{text}");
        assert_eq!(positions(&graph, &[row(None, None)])[0].1, "not listed yet");
    }

    #[test]
    fn expiry_reads_in_minutes() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(expiry_text(None, now), "no access token yet");
        assert!(expiry_text(Some(now + time::Duration::minutes(30)), now).contains("30 min"));
        assert!(expiry_text(Some(now - time::Duration::minutes(1)), now).starts_with("expired"));
    }
}
