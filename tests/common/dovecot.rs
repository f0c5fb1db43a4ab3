//! A private Dovecot per test: its own directory, config and loopback ports (IMAP and IMAPS
//! with a fresh self-signed certificate), passwd-file users with Maildirs. Stopped in Drop by
//! PID. Needs root (mail files belong to the mail uid) and /usr/sbin/dovecot.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const MAIL_UID: u32 = 10000;
static SEQ: AtomicU64 = AtomicU64::new(0);

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    /// Hex SHA-256 of the server certificate (DER), for pinning.
    pub cert_sha256: String,
    master: i32,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dovecot {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A Dovecot that also accepts OAuth2 bearer tokens (SASL XOAUTH2 and OAUTHBEARER), checked
    /// by its `oauth2` passdb against the token introspection endpoint at `introspection_url`
    /// (RFC 7662, form POST; the answer's `username` must be the login name).
    pub fn start_with_oauth2(introspection_url: &str) -> Self {
        Self::start_with(Some(introspection_url))
    }

    fn start_with(introspection_url: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("daygle-dovecot-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let d = dir.path();
        for sub in ["run", "state", "mail", "home"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        run(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "3650",
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout",
                ])
                .arg(d.join("key.pem"))
                .arg("-out")
                .arg(d.join("cert.pem")),
            "openssl req",
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(d.join("cert.pem"))
            .output()
            .expect("openssl x509");
        let cert_sha256 = daygle::ingest::imap::tls::fingerprint(&der.stdout);
        std::fs::write(d.join("users"), "").expect("users file");
        let port = free_port();
        let tls_port = free_port();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let (mechanisms, oauth2_passdb) = match introspection_url {
            Some(url) => {
                std::fs::write(
                    d.join("oauth2.conf"),
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\nforce_introspection = yes\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
                    ),
                )
                .expect("oauth2.conf");
                (
                    "plain login xoauth2 oauthbearer",
                    format!(
                        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}/oauth2.conf\n}}\n",
                        d.display()
                    ),
                )
            }
            None => ("plain login", String::new()),
        };
        let conf = format!(
            r#"instance_name = daygle-test-{pid}-{n}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
mail_location = maildir:{d}/mail/%u/Maildir
mail_fsync = never
first_valid_uid = 1
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid={MAIL_UID} gid={MAIL_UID} home={d}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"#,
            pid = std::process::id(),
            d = d.display(),
        );
        std::fs::write(d.join("dovecot.conf"), conf).expect("write dovecot.conf");
        chown_tree(&d.join("mail"));
        chown_tree(&d.join("home"));
        // The master keeps the caller's stderr open: send it to a file.
        let stderr = std::fs::File::create(d.join("dovecot.stderr")).expect("stderr file");
        let status = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .expect("start dovecot");
        assert!(
            status.success(),
            "dovecot failed to start: {}",
            std::fs::read_to_string(d.join("dovecot.stderr")).unwrap_or_default()
        );
        let pid_file = d.join("run/master.pid");
        let mut master = 0;
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&pid_file)
                && let Ok(p) = text.trim().parse()
            {
                master = p;
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(master > 0, "dovecot did not write its pid");
        Dovecot {
            dir,
            port,
            tls_port,
            cert_sha256,
            master,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a login; Dovecot reads the passwd file on every login.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut users = std::fs::read_to_string(self.path().join("users")).unwrap_or_default();
        users.push_str(&format!("{user}:{{PLAIN}}{password}::::::\n"));
        std::fs::write(self.path().join("users"), users).expect("write users");
    }

    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.path().join("mail").join(user).join("Maildir");
        if folder.eq_ignore_ascii_case("INBOX") {
            root
        } else {
            root.join(format!(".{}", folder.replace('/', ".")))
        }
    }

    /// Writes messages straight into a Maildir folder (fast; Dovecot indexes them on access).
    /// `age` sets the file time, which Dovecot reports as INTERNALDATE.
    pub fn write_messages(&self, user: &str, folder: &str, messages: &[Vec<u8>], age: Duration) {
        let dir = self.maildir(user, folder);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("maildir");
        }
        let when = SystemTime::now() - age;
        let stamp = when
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for raw in messages {
            let n = SEQ.fetch_add(1, Ordering::SeqCst);
            let path = dir
                .join("cur")
                .join(format!("{stamp}.M{n}P1.test,S={}:2,S", raw.len()));
            std::fs::write(&path, raw).expect("write message");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(when).expect("mtime");
        }
        chown_tree(&self.path().join("mail"));
    }

    fn conf(&self) -> PathBuf {
        self.path().join("dovecot.conf")
    }

    /// Gives a folder a new UIDVALIDITY, as a server does after rebuilding its index.
    pub fn set_uidvalidity(&self, user: &str, folder: &str, value: u32) {
        run(
            Command::new("doveadm").arg("-c").arg(self.conf()).args([
                "mailbox",
                "update",
                "-u",
                user,
                "--uid-validity",
                &value.to_string(),
                folder,
            ]),
            "doveadm mailbox update",
        );
    }

    /// Kills every IMAP session process of this instance (connections drop mid-command).
    pub fn kill_sessions(&self) -> usize {
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let comm = &stat[stat.find('(').unwrap_or(0) + 1..close];
            let ppid: i32 = stat[close + 2..]
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if ppid == self.master && comm == "imap" {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                killed += 1;
            }
        }
        killed
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("dovecot.log")).unwrap_or_default()
    }
}

fn chown_tree(path: &Path) {
    run(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{MAIL_UID}:{MAIL_UID}"))
            .arg(path),
        "chown",
    );
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGKILL: the children follow within a second; SIGTERM would take ~3 s per test.
        let _ = kill(Pid::from_raw(self.master), Signal::SIGKILL);
    }
}
