//! A real SMTP server on loopback for mail tests: Debian's aiosmtpd (python3-aiosmtpd) with
//! STARTTLS required and AUTH, certificate from a throwaway CA made with `openssl`. Each
//! message it accepts lands as one file in its spool directory (recipients on the first
//! line). Killed by PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alerts";
pub const PASSWORD: &str = "smtp secret";

const SERVER: &str = r#"
import os, ssl, sys, signal, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
spool, port, cert, key, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
class Spool:
    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(spool, "%06d" % len(os.listdir(spool)))
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Rcpt: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 OK"
def check(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Spool(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True, authenticator=check, auth_required=True)
c.start()
print("ready", flush=True)
threading.Event().wait()
"#;

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    /// PEM of the CA that signed the server's certificate (for `smtp.ca_file`).
    pub ca_file: PathBuf,
    spool: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn available() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/usr/bin/openssl").exists()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SmtpServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Daygle test CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        let spool = d.join("spool");
        std::fs::create_dir(&spool).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(d.join("server.py"), SERVER).unwrap();
        let mut child = Command::new("/usr/bin/python3")
            .arg(d.join("server.py"))
            .args([spool.to_str().unwrap(), &port.to_string()])
            .args([d.join("server.pem"), d.join("server.key")])
            .args([USER, PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        SmtpServer {
            child,
            port,
            ca_file: d.join("ca.pem"),
            spool,
            _dir: dir,
        }
    }

    /// Every message received so far, oldest first (recipients line included).
    pub fn received(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.spool)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits (up to 10 s) until at least `n` messages have arrived.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `[smtp]` settings that reach this server with STARTTLS and AUTH.
    pub fn settings(&self) -> daygle::config::SmtpSettings {
        daygle::config::SmtpSettings {
            enabled: true,
            host: "127.0.0.1".into(),
            port: self.port,
            tls: "starttls".into(),
            username: USER.into(),
            password: daygle::config::Secret::new(PASSWORD),
            password_file: String::new(),
            from: "archiver@example.org".into(),
            ca_file: self.ca_file.display().to_string(),
            timeout_secs: 10,
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
