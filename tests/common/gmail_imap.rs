//! A scripted Gmail IMAP server on loopback: just enough IMAP4rev1 and `X-GM-EXT-1` for the
//! archive's client (CAPABILITY, LOGIN, LIST with `\All`, EXAMINE, UID FETCH with `X-GM-MSGID`
//! and `X-GM-LABELS`, NOOP, LOGOUT). As on Gmail, every message is in "[Gmail]/All Mail" once
//! and each label is also a folder holding the messages that carry it (INBOX for `\Inbox`), each
//! folder with its own UIDs — so a client that synced every folder would store copies.
//! Dovecot does not speak `X-GM-EXT-1`, hence the fake.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const ALL_MAIL: &str = "[Gmail]/All Mail";

#[derive(Debug, Clone)]
pub struct GmailMessage {
    pub msgid: u64,
    pub raw: Vec<u8>,
    /// As Gmail spells them in `X-GM-LABELS` (`\Inbox`, `Work`, `Client Projects`).
    pub labels: Vec<String>,
}

#[derive(Default)]
struct State {
    messages: Vec<GmailMessage>,
    /// Every command line received, for the test to look at.
    commands: Vec<String>,
}

pub struct FakeGmailImap {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGmailImap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const UIDVALIDITY: u32 = 7;

impl FakeGmailImap {
    pub async fn start(messages: Vec<GmailMessage>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            messages,
            commands: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Self { port, state, task }
    }

    /// Gives the message with this X-GM-MSGID a new set of labels (as a Gmail user would).
    pub fn relabel(&self, msgid: u64, labels: &[&str]) {
        let mut s = self.state.lock().expect("state");
        if let Some(m) = s.messages.iter_mut().find(|m| m.msgid == msgid) {
            m.labels = labels.iter().map(|l| l.to_string()).collect();
        }
    }

    /// Command lines received so far (tags stripped).
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().expect("state").commands.clone()
    }
}

/// The folders: All Mail, INBOX, and one per user label.
fn folders(s: &State) -> Vec<String> {
    let mut out = vec!["INBOX".to_string(), ALL_MAIL.to_string()];
    for m in &s.messages {
        for l in &m.labels {
            if !l.starts_with('\\') && !out.contains(l) {
                out.push(l.clone());
            }
        }
    }
    out
}

/// (uid, message) of a folder.
fn contents(s: &State, folder: &str) -> Vec<(u32, GmailMessage)> {
    s.messages
        .iter()
        .filter(|m| {
            folder == ALL_MAIL
                || (folder == "INBOX" && m.labels.iter().any(|l| l == "\\Inbox"))
                || m.labels.iter().any(|l| l == folder)
        })
        .cloned()
        .enumerate()
        .map(|(i, m)| (i as u32 + 1, m))
        .collect()
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A label as Gmail writes it in `X-GM-LABELS`: system labels and atoms bare, others quoted.
fn label_item(l: &str) -> String {
    let atom = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.&+/".contains(c))
    };
    match l.strip_prefix('\\') {
        Some(rest) if atom(rest) => l.to_string(),
        _ if atom(l) => l.to_string(),
        _ => quoted(l),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_string(),
    }
}

/// Whether `uid` is in an IMAP sequence set; `n:*` also takes the last message (`max`).
fn in_set(set: &str, uid: u32, max: u32) -> bool {
    set.split(',').any(|part| {
        let bound = |b: &str| {
            if b == "*" {
                max
            } else {
                b.parse().unwrap_or(0)
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (bound(a), bound(b));
                (a.min(b)..=a.max(b)).contains(&uid)
            }
            None => bound(part) == uid,
        }
    })
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"* OK Gimap ready for requests\r\n")
        .await?;
    let mut selected: Option<String> = None;
    while let Some(line) = lines.next_line().await? {
        let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        state.lock().expect("state").commands.push(rest.to_string());
        let upper = rest.to_ascii_uppercase();
        let mut out: Vec<u8> = Vec::new();
        if upper == "CAPABILITY" {
            out.extend_from_slice(b"* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 SPECIAL-USE\r\n");
            out.extend_from_slice(format!("{tag} OK Thats all she wrote!\r\n").as_bytes());
        } else if upper.starts_with("LOGIN ") {
            out.extend_from_slice(format!("{tag} OK user authenticated (Success)\r\n").as_bytes());
        } else if upper.starts_with("LIST ") {
            let names = folders(&state.lock().expect("state"));
            out.extend_from_slice(b"* LIST (\\HasChildren \\Noselect) \"/\" \"[Gmail]\"\r\n");
            for name in names {
                let attrs = if name == ALL_MAIL {
                    "\\All \\HasNoChildren"
                } else {
                    "\\HasNoChildren"
                };
                out.extend_from_slice(
                    format!("* LIST ({attrs}) \"/\" {}\r\n", quoted(&name)).as_bytes(),
                );
            }
            out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
        } else if upper.starts_with("EXAMINE ") || upper.starts_with("SELECT ") {
            let (verb, name) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = unquote(name);
            let n = contents(&state.lock().expect("state"), &name).len() as u32;
            selected = Some(name.clone());
            out.extend_from_slice(
                format!(
                    "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen)\r\n\
                     * OK [PERMANENTFLAGS ()] Flags permitted.\r\n\
                     * OK [UIDVALIDITY {UIDVALIDITY}] UIDs valid.\r\n\
                     * {n} EXISTS\r\n* 0 RECENT\r\n\
                     * OK [UIDNEXT {}] Predicted next UID.\r\n\
                     {tag} OK [READ-ONLY] {} ({}) Success\r\n",
                    n + 1,
                    verb.to_ascii_uppercase(),
                    name
                )
                .as_bytes(),
            );
        } else if upper.starts_with("UID FETCH ") && selected.is_some() {
            let args = &rest["UID FETCH ".len()..];
            let (set, items) = args.split_once(' ').unwrap_or((args, ""));
            let items = items.to_ascii_uppercase();
            let folder = selected.clone().unwrap_or_default();
            let msgs = contents(&state.lock().expect("state"), &folder);
            let max = msgs.last().map(|(u, _)| *u).unwrap_or(0);
            for (seq, (uid, m)) in msgs.iter().enumerate() {
                if !in_set(set, *uid, max) {
                    continue;
                }
                let mut parts = vec![format!("UID {uid}")];
                if items.contains("RFC822.SIZE") {
                    parts.push(format!("RFC822.SIZE {}", m.raw.len()));
                }
                if items.contains("INTERNALDATE") {
                    parts.push("INTERNALDATE \"01-Jan-2024 10:00:00 +0000\"".into());
                }
                if items.contains("FLAGS") {
                    parts.push("FLAGS (\\Seen)".into());
                }
                if items.contains("X-GM-MSGID") {
                    parts.push(format!("X-GM-MSGID {}", m.msgid));
                }
                if items.contains("X-GM-LABELS") {
                    let labels: Vec<String> = m.labels.iter().map(|l| label_item(l)).collect();
                    parts.push(format!("X-GM-LABELS ({})", labels.join(" ")));
                }
                out.extend_from_slice(
                    format!("* {} FETCH ({}", seq + 1, parts.join(" ")).as_bytes(),
                );
                if items.contains("BODY.PEEK[]") {
                    out.extend_from_slice(format!(" BODY[] {{{}}}\r\n", m.raw.len()).as_bytes());
                    out.extend_from_slice(&m.raw);
                }
                out.extend_from_slice(b")\r\n");
            }
            out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
        } else if upper == "NOOP" {
            out.extend_from_slice(format!("{tag} OK Success\r\n").as_bytes());
        } else if upper == "LOGOUT" {
            write
                .write_all(format!("* BYE LOGOUT Requested\r\n{tag} OK 73 GOOD\r\n").as_bytes())
                .await?;
            return Ok(());
        } else {
            out.extend_from_slice(format!("{tag} BAD Unknown command\r\n").as_bytes());
        }
        write.write_all(&out).await?;
    }
    Ok(())
}
