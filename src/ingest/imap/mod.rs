//! The IMAP source: connecting (TLS, STARTTLS, plain), logging in, listing folders, and the
//! folder sync that feeds the pipeline.

pub mod delete;
pub mod fetch;
pub mod flags;
pub mod folders;
pub mod gmail;
pub mod idle;
pub mod sasl;
pub mod sync;
pub mod tls;
pub mod utf7;

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use async_imap::types::NameAttribute;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::ingest::accounts::{Account, TlsMode};

/// Any byte stream a session can run over; boxed so plain and TLS sessions share one type.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Transport for T {}

pub type Session = async_imap::Session<Box<dyn Transport>>;
type Client = async_imap::Client<Box<dyn Transport>>;

/// Why talking to an IMAP server failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot find the server {host}: {detail} (check the host name)")]
    Dns { host: String, detail: String },
    #[error(
        "cannot connect to {addr}: {detail} (is the server up, the port right, a firewall in the way?)"
    )]
    Connect { addr: String, detail: String },
    #[error("{what} timed out after {secs} s (server too slow or unreachable)")]
    Timeout { what: String, secs: u64 },
    #[error("secure connection (TLS) to {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error(
        "the server refused the login for {username}: {detail} (check the user name and password)"
    )]
    Auth { username: String, detail: String },
    #[error("the server does not offer STARTTLS; choose implicit TLS (port 993) or none")]
    NoStartTls,
    #[error("the server closed the connection unexpectedly")]
    Closed,
    #[error("IMAP {what} failed: {detail}")]
    Protocol { what: String, detail: String },
}

impl From<ImapError> for crate::error::Error {
    fn from(e: ImapError) -> Self {
        crate::error::Error::part(e)
    }
}

impl ImapError {
    pub fn protocol(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        let detail = e.to_string();
        if detail.contains("connection lost") || detail.contains("unexpected end of file") {
            return ImapError::Closed;
        }
        ImapError::Protocol {
            what: what.into(),
            detail,
        }
    }
}

impl ImapError {
    /// The failure in fixed words for a page: never text the server sent (a banner or a NO
    /// reply from whatever listens on the port), so the connection test cannot be used to read
    /// other services' replies through the browser. The log keeps the detail.
    pub fn plain_words(&self) -> String {
        match self {
            ImapError::Dns { host, .. } => {
                format!("cannot find the server {host} (check the host name)")
            }
            ImapError::Connect { addr, .. } => format!(
                "cannot connect to {addr} (is the server up, the port right, a firewall in the way?)"
            ),
            ImapError::Tls { host, .. } => format!(
                "the secure connection (TLS) to {host} failed (wrong port or TLS mode, or a certificate that is not trusted or pinned)"
            ),
            ImapError::Auth { username, .. } => format!(
                "the server refused the login for {username} (check the user name and password)"
            ),
            ImapError::Protocol { what, .. } => format!(
                "the server did not answer {what} as an IMAP server should (is this an IMAP port?)"
            ),
            other => other.to_string(),
        }
    }
}

/// A failed connection test in words fit for a page: IMAP failures without server text,
/// setting problems as they are, anything else as a pointer to the log.
pub fn plain_failure(e: &crate::error::Error) -> String {
    use crate::error::Error;
    if let Some(imap) = e.part_ref::<ImapError>() {
        return imap.plain_words();
    }
    match e {
        Error::Invalid { .. } => e.to_string(),
        _ if e.part_ref::<crate::secrets::SecretError>().is_some() => e.to_string(),
        _ => "an unexpected error (see the server log)".into(),
    }
}

/// Connection limits for one session.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
}

impl Timeouts {
    pub fn from_settings(s: &crate::config::SyncSettings) -> Self {
        Self {
            connect: Duration::from_secs(s.connect_timeout_secs),
            command: Duration::from_secs(s.command_timeout_secs),
        }
    }
}

/// Runs one IMAP step under a time limit.
pub async fn timed<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, step).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::protocol(what, e)),
        Err(_) => Err(ImapError::Timeout {
            what: what.into(),
            secs: limit.as_secs(),
        }),
    }
}

/// Where and how to connect, taken from an account row.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub pinned_cert_sha256: Option<String>,
}

impl Endpoint {
    pub fn of(account: &Account) -> crate::error::Result<Self> {
        Ok(Self {
            host: account.host.clone().unwrap_or_default(),
            port: account
                .port
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(993),
            tls: account.tls()?,
            username: account.username.clone().unwrap_or_default(),
            pinned_cert_sha256: account.pinned_cert_sha256.clone(),
        })
    }
}

/// How a session proves who it is.
pub enum Credential {
    Password(Zeroizing<String>),
    /// An OAuth2 access token over SASL `XOAUTH2` or `OAUTHBEARER`.
    Bearer {
        mechanism: sasl::Mechanism,
        token: Zeroizing<String>,
    },
}

/// Connects, reads the greeting, secures the connection as configured, and logs in.
pub async fn connect(
    ep: &Endpoint,
    password: &Zeroizing<String>,
    t: Timeouts,
) -> Result<Session, ImapError> {
    connect_with(ep, Credential::Password(password.clone()), t).await
}

/// [`connect`] with a password or an OAuth2 bearer token.
pub async fn connect_with(
    ep: &Endpoint,
    credential: Credential,
    t: Timeouts,
) -> Result<Session, ImapError> {
    let addr = format!("{}:{}", ep.host, ep.port);
    let secs = t.connect.as_secs();
    let resolved = tokio::time::timeout(t.connect, tokio::net::lookup_host(addr.clone()))
        .await
        .map_err(|_| ImapError::Timeout {
            what: format!("looking up {}", ep.host),
            secs,
        })?
        .map_err(|e| ImapError::Dns {
            host: ep.host.clone(),
            detail: e.to_string(),
        })?
        .collect::<Vec<_>>();
    if resolved.is_empty() {
        return Err(ImapError::Dns {
            host: ep.host.clone(),
            detail: "no addresses".into(),
        });
    }
    let tcp = tokio::time::timeout(t.connect, TcpStream::connect(&resolved[..]))
        .await
        .map_err(|_| ImapError::Timeout {
            what: format!("connecting to {addr}"),
            secs,
        })?
        .map_err(|e| ImapError::Connect {
            addr: addr.clone(),
            detail: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = match ep.tls {
        TlsMode::Implicit => Box::new(wrap_tls(ep, tcp, t).await?),
        _ => Box::new(tcp),
    };
    let mut client = Client::new(stream);
    // async-imap does not read the greeting itself.
    match timed(t.connect, "reading the greeting", client.read_response()).await? {
        Some(_) => {}
        None => return Err(ImapError::Closed),
    }
    if ep.tls == TlsMode::StartTls {
        timed(
            t.command,
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await
        .map_err(|e| match e {
            ImapError::Protocol { .. } => ImapError::NoStartTls,
            other => other,
        })?;
        let inner = client.into_inner();
        let secured: Box<dyn Transport> = Box::new(wrap_tls(ep, inner, t).await?);
        // No second greeting after STARTTLS (RFC 3501 6.2.1).
        client = Client::new(secured);
    }
    let refused = |detail: String| ImapError::Auth {
        username: ep.username.clone(),
        detail,
    };
    let timeout = || ImapError::Timeout {
        what: "login".into(),
        secs: t.command.as_secs(),
    };
    let result = match credential {
        Credential::Password(password) => {
            tokio::time::timeout(t.command, client.login(&ep.username, password.as_str()))
                .await
                .map_err(|_| timeout())?
        }
        Credential::Bearer { mechanism, token } => {
            let mut auth = sasl::BearerAuth::new(mechanism, &ep.username, &ep.host, ep.port, token);
            tokio::time::timeout(
                t.command,
                client.authenticate(mechanism.as_str(), &mut auth),
            )
            .await
            .map_err(|_| timeout())?
        }
    };
    match result {
        Ok(session) => Ok(session),
        Err((async_imap::error::Error::No(detail), _)) => Err(refused(detail)),
        Err((e, _)) => Err(ImapError::protocol("login", e)),
    }
}

async fn wrap_tls<S: AsyncRead + AsyncWrite + Unpin>(
    ep: &Endpoint,
    stream: S,
    t: Timeouts,
) -> Result<tokio_rustls::client::TlsStream<S>, ImapError> {
    let tls_err = |detail: String| ImapError::Tls {
        host: ep.host.clone(),
        detail,
    };
    let config =
        tls::client_config(ep.pinned_cert_sha256.as_deref()).map_err(|e| tls_err(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| tls_err(format!("`{}` is not a valid server name: {e}", ep.host)))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(t.connect, connector.connect(name, stream))
        .await
        .map_err(|_| ImapError::Timeout {
            what: "the TLS handshake".into(),
            secs: t.connect.as_secs(),
        })?
        .map_err(|e| tls_err(e.to_string()))
}

/// A folder the server lists.
#[derive(Debug, Clone)]
pub struct FolderInfo {
    /// The name as the server spells it (modified UTF-7), used in every command.
    pub name: String,
    /// The name as people read it (decoded), used in the archive.
    pub display: String,
    pub selectable: bool,
    /// The RFC 6154 `\All` special-use folder (Gmail's "All Mail").
    pub all: bool,
}

impl FolderInfo {
    /// Whether the account's folder patterns take this folder; an operator may have written a
    /// pattern with either spelling of the name.
    pub fn wanted(&self, filter: &folders::FolderFilter) -> bool {
        self.selectable && filter.includes_any(&[&self.display, &self.name])
    }
}

pub async fn list_folders(
    session: &mut Session,
    t: Timeouts,
) -> Result<Vec<FolderInfo>, ImapError> {
    let names = timed(t.command, "LIST", async {
        session
            .list(Some(""), Some("*"))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    let mut out: Vec<FolderInfo> = names
        .iter()
        .map(|n| FolderInfo {
            name: n.name().to_string(),
            display: utf7::display(n.name()),
            selectable: !n
                .attributes()
                .iter()
                .any(|a| matches!(a, NameAttribute::NoSelect)),
            all: n
                .attributes()
                .iter()
                .any(|a| matches!(a, NameAttribute::All)),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What "Test connection" reports.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    /// (folder, messages, archived by the current patterns)
    pub folders: Vec<(String, u32, bool)>,
}

/// Logs in, lists the folders with their message counts, logs out.
pub async fn test_connection(
    account: &Account,
    password: &Zeroizing<String>,
    t: Timeouts,
) -> crate::error::Result<ConnectionReport> {
    let ep = Endpoint::of(account)?;
    let mut session = connect(&ep, password, t).await?;
    let filter = folders::FolderFilter::new(&account.folders_include, &account.folders_exclude);
    let mut report = ConnectionReport {
        folders: Vec::new(),
    };
    for f in list_folders(&mut session, t).await? {
        if !f.selectable {
            continue;
        }
        let status = timed(t.command, "STATUS", session.status(&f.name, "(MESSAGES)")).await?;
        let wanted = f.wanted(&filter);
        report.folders.push((f.display, status.exists, wanted));
    }
    let _ = timed(t.command, "LOGOUT", session.logout()).await;
    Ok(report)
}
