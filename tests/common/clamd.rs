//! A private clamd for tests: its own temp dir, an EICAR-only signature database, TCP on a
//! free loopback port and a unix socket. One per test (it starts in well under a second), so a
//! test may stop and restart it to play "the virus scanner went down".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daygle::config::ClamavSettings;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The standard anti-virus test file (harmless by design).
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// MD5 of [`EICAR`], for the whole-file (`.hdb`) signature.
const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";

const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// No single exchange with clamd may hang a test.
const IO_LIMIT: Duration = Duration::from_secs(10);

pub struct Clamd {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Clamd {
    /// Writes the config and database, starts clamd and waits until it answers PING.
    pub fn spawn() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("daygle-test-clamd-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let root = dir.path();
        std::fs::create_dir_all(root.join("db")).expect("db dir");
        std::fs::create_dir_all(root.join("tmp")).expect("tmp dir");
        // .hdb matches the decoded attachment as a whole; .ndb matches EICAR anywhere in the
        // stream, which is what catches it inline in a body or quoted-printable part.
        std::fs::write(
            root.join("db/eicar.hdb"),
            format!("{EICAR_MD5}:68:Eicar-Test-Signature\n"),
        )
        .expect("write .hdb");
        std::fs::write(
            root.join("db/eicar.ndb"),
            format!("Eicar-Test-Signature-Body:0:*:{}\n", hex::encode(EICAR)),
        )
        .expect("write .ndb");
        let conf = format!(
            "Foreground yes\nLogFile {d}/clamd.log\nLogTime yes\nPidFile {d}/clamd.pid\n\
             TemporaryDirectory {d}/tmp\nDatabaseDirectory {d}/db\nLocalSocket {d}/clamd.sock\n\
             LocalSocketMode 660\nFixStaleSocket yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
             MaxThreads 4\nStreamMaxLength 50M\nScanMail yes\nScanArchive yes\nSelfCheck 0\n\
             Bytecode no\n",
            d = root.display()
        );
        std::fs::write(root.join("clamd.conf"), conf).expect("write clamd.conf");
        let mut clamd = Self {
            dir,
            port,
            child: None,
        };
        clamd.start();
        clamd
    }

    pub fn tcp_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    /// Scanner settings pointing at this clamd over TCP.
    pub fn settings(&self) -> ClamavSettings {
        ClamavSettings {
            enabled: true,
            address: self.tcp_address(),
            timeout_secs: 20,
            ..ClamavSettings::default()
        }
    }

    /// (Re)starts clamd and waits until it answers PING over TCP and the unix socket.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "clamd is already running");
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("clamd.stdout"))
            .expect("clamd output file");
        let child = Command::new(clamd_binary())
            .arg("-c")
            .arg(self.dir.path().join("clamd.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start clamd (apt-get install clamav-daemon)");
        spawn_watchdog(child.id());
        self.child = Some(child);
        let started = Instant::now();
        while !(self.answers_ping_tcp() && self.answers_ping_socket()) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("clamd exited with {status}:\n{}", self.log_tail());
            }
            if started.elapsed() > STARTUP_LIMIT {
                panic!("clamd did not answer PING in time:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops clamd (SIGTERM, then SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds a body signature (`name` matches `pattern` anywhere) and makes clamd reload its
    /// database, for tests where a stored message becomes detectable later.
    pub fn add_signature(&self, name: &str, pattern: &[u8]) {
        std::fs::write(
            self.dir.path().join(format!("db/{name}.ndb")),
            format!("{name}:0:*:{}\n", hex::encode(pattern)),
        )
        .expect("write extra .ndb");
        let mut stream = TcpStream::connect(self.tcp_address()).expect("connect to clamd");
        let _ = stream.set_read_timeout(Some(IO_LIMIT));
        let reply = command(&mut stream, b"zRELOAD\0");
        assert_eq!(
            reply, b"RELOADING\0",
            "clamd answered RELOAD with {reply:?}"
        );
        // RELOAD returns at once and reloads in the background; PING waits until it is done,
        // but a scan right after may still see the old database, so poll for the new one.
        let started = Instant::now();
        loop {
            let mut s = TcpStream::connect(self.tcp_address()).expect("connect to clamd");
            let _ = s.set_read_timeout(Some(IO_LIMIT));
            let mut req = b"zINSTREAM\0".to_vec();
            req.extend_from_slice(&(pattern.len() as u32).to_be_bytes());
            req.extend_from_slice(pattern);
            req.extend_from_slice(&[0, 0, 0, 0]);
            if String::from_utf8_lossy(&command(&mut s, &req)).contains(name) {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "clamd did not load signature {name}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answers_ping_tcp(&self) -> bool {
        TcpStream::connect(self.tcp_address())
            .map(|mut s| {
                let _ = s.set_read_timeout(Some(IO_LIMIT));
                command(&mut s, b"zPING\0") == b"PONG\0"
            })
            .unwrap_or(false)
    }

    fn answers_ping_socket(&self) -> bool {
        UnixStream::connect(self.socket_path())
            .map(|mut s| {
                let _ = s.set_read_timeout(Some(IO_LIMIT));
                command(&mut s, b"zPING\0") == b"PONG\0"
            })
            .unwrap_or(false)
    }

    /// The end of clamd's log and output, for failure messages.
    pub fn log_tail(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let text = read("clamd.log") + &read("clamd.stdout");
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn command(stream: &mut (impl Read + Write), request: &[u8]) -> Vec<u8> {
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// Drop does not run when the test process is killed; this shell kills clamd (checking it is
/// still clamd, as PIDs get reused) once the test process is gone.
fn spawn_watchdog(clamd_pid: u32) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         grep -q clamd /proc/{clamd_pid}/comm 2>/dev/null && kill -9 {clamd_pid}",
        me = std::process::id()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // Outlives this process by design: it is what cleans up after it.
    #[allow(clippy::zombie_processes)]
    let _watchdog = cmd.spawn().expect("start clamd watchdog");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn clamd_binary() -> PathBuf {
    for candidate in ["/usr/sbin/clamd", "/usr/local/sbin/clamd"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    PathBuf::from("clamd")
}
