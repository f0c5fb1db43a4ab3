//! A private PostgreSQL cluster under the data directory, run with the machine's own
//! `initdb`/`pg_ctl`/`postgres`. It listens on a unix socket inside its directory only.
//!
//! The cluster outlives a crash of `daygle` (pg_ctl detaches it), so the next start finds it
//! running and adopts it. `owner` records which process stops it at shutdown: `serve` takes
//! ownership from short-lived commands, and a dead owner's cluster is adopted by whoever comes
//! next. A lock file serialises these decisions between processes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Uid, User};
use sqlx::postgres::PgConnectOptions;

/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;
pub const SUPERUSER: &str = "daygle";
const START_TIMEOUT_SECS: u32 = 60;
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 107;
/// Present in a data directory that is to replay archived WAL when it starts.
const RECOVERY_SIGNAL: &str = "recovery.signal";
/// Logged when the server takes writes; during recovery it logs "…read-only connections".
const READY_FOR_WRITES: &str = "database system is ready to accept connections";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: install PostgreSQL (e.g. `apt-get install postgresql`), set database.pg_bin_dir, set database.url to an existing server, or use docker compose"
    )]
    NoBinaries,
    #[error(
        "daygle runs as root, and PostgreSQL refuses to: the private cluster runs as system user `{0}`, which does not exist; create it (`useradd --system {0}`) or set database.embedded_user"
    )]
    NoUser(String),
    #[error(
        "PostgreSQL user `{user}` cannot reach {dir}: allow it to traverse the directory (chmod o+x) or choose a storage.data_dir elsewhere (left empty, it is /var/lib/daygle as root)"
    )]
    Unreachable { user: String, dir: PathBuf },
    #[error("the socket path {0} is too long for a unix socket; choose a shorter storage.data_dir")]
    PathTooLong(PathBuf),
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<ClusterError> for crate::error::Error {
    fn from(e: ClusterError) -> Self {
        crate::error::Error::part(e)
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io {
        action,
        path,
        source,
    }
}

/// How long the process that opens the cluster will keep using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenure {
    /// `daygle serve`: keeps the cluster up and stops it at shutdown.
    Server,
    /// A CLI command: uses a running cluster, or starts one for its own duration.
    Command,
}

impl Tenure {
    fn tag(self) -> &'static str {
        match self {
            Tenure::Server => "server",
            Tenure::Command => "command",
        }
    }
}

/// Where the PostgreSQL binaries live: the configured dir, pg_config's, or the newest Debian one.
pub fn find_bin_dir(configured: &str) -> Result<PathBuf, ClusterError> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if !configured.trim().is_empty() {
        let dir = PathBuf::from(configured.trim());
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(ClusterError::NoBinaries)
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if has_tools(&dir) {
            return Ok(dir);
        }
    }
    Err(ClusterError::NoBinaries)
}

/// The cluster's files and the account that runs it.
#[derive(Debug, Clone)]
pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    run_as: Option<User>,
}

impl Cluster {
    /// `root` holds `data/`, the socket, the log and the ownership files.
    pub fn new(root: &Path, bin_dir: &str, embedded_user: &str) -> Result<Self, ClusterError> {
        let bin = find_bin_dir(bin_dir)?;
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(embedded_user)
                .ok()
                .flatten()
                .ok_or_else(|| ClusterError::NoUser(embedded_user.to_string()))?;
            Some(user)
        } else {
            None
        };
        fs::create_dir_all(root).map_err(io_err("create", root))?;
        let root = root.canonicalize().map_err(io_err("resolve", root))?;
        let socket = root.join(format!(".s.PGSQL.{SOCKET_PORT}"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ClusterError::PathTooLong(socket));
        }
        Ok(Self { root, bin, run_as })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Connection options for `database` over the cluster's socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.root)
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    pub fn is_initialised(&self) -> bool {
        self.data_dir().join("PG_VERSION").is_file()
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.current_dir(&self.root).env("LC_ALL", "C.UTF-8");
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        cmd
    }

    fn run(&self, action: &str, cmd: &mut Command) -> Result<Output, ClusterError> {
        let out = cmd.output().map_err(|e| ClusterError::Command {
            action: action.into(),
            detail: e.to_string(),
        })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(ClusterError::Command {
                action: action.into(),
                detail: format!(
                    "{}{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    if out.stderr.is_empty() { "" } else { " " },
                    self.log_tail()
                ),
            })
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        if lines.is_empty() {
            String::new()
        } else {
            format!(
                "(last lines of {}: {})",
                self.log_file().display(),
                lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )
        }
    }

    /// Hands the cluster directory to the unprivileged user when running as root, and checks
    /// that user can reach it.
    fn prepare_dirs(&self) -> Result<(), ClusterError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        for dir in self.root.ancestors().skip(1) {
            let meta = fs::metadata(dir).map_err(io_err("inspect", dir))?;
            let traversable = meta.mode() & 0o001 != 0
                || (meta.uid() == user.uid.as_raw() && meta.mode() & 0o100 != 0)
                || (meta.gid() == user.gid.as_raw() && meta.mode() & 0o010 != 0);
            if !traversable {
                return Err(ClusterError::Unreachable {
                    user: user.name.clone(),
                    dir: dir.to_path_buf(),
                });
            }
        }
        nix::unistd::chown(&self.root, Some(user.uid), Some(user.gid))
            .map_err(|e| io_err("hand over", &self.root)(e.into()))?;
        Ok(())
    }

    /// Creates the cluster with UTF-8 encoding and a `daygle` superuser reachable only over
    /// the socket in this directory.
    pub fn init(&self) -> Result<(), ClusterError> {
        self.prepare_dirs()?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(io_err("restrict permissions of", &self.root))?;
        let data = self.data_dir();
        self.run(
            "initdb",
            self.command("initdb").arg("-D").arg(&data).args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]),
        )?;
        Ok(())
    }

    /// True when a live postmaster serves this data directory. pg_ctl's own check (`kill -0`)
    /// is fooled by a killed postmaster that nobody reaped (a zombie, as in containers whose
    /// PID 1 does not reap) and by a recycled pid, so the process itself is inspected.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(is_live_postgres)
    }

    /// Starts the server again after it died under a running `daygle` (a crash, SIGKILL, the
    /// OOM killer): PostgreSQL replays its write-ahead log on start, so committed work is kept
    /// and uncommitted work is rolled back. Serialised with other processes by the lock file;
    /// false when someone else had already restarted it.
    pub fn restart_if_down(&self) -> Result<bool, ClusterError> {
        let _lock = self.lock()?;
        if self.is_running() {
            return Ok(false);
        }
        self.start()?;
        Ok(true)
    }

    /// The pid in `postmaster.pid`, whether or not that process still lives.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Removes a `postmaster.pid` whose process is gone, which would make PostgreSQL refuse to
    /// start when its pid now belongs to a zombie or another process.
    fn clear_stale_pid_file(&self) -> Result<(), ClusterError> {
        if self.postmaster_pid().is_none() || self.is_running() {
            return Ok(());
        }
        let socket_lock = self.root.join(format!(".s.PGSQL.{SOCKET_PORT}.lock"));
        for path in [self.data_dir().join("postmaster.pid"), socket_lock] {
            if path.exists() {
                tracing::warn!(path = %path.display(), "removing a lock file of a PostgreSQL that is no longer running");
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<(), ClusterError> {
        self.prepare_dirs()?;
        self.clear_stale_pid_file()?;
        let root = self.root.to_string_lossy();
        if root.contains('\'') || root.contains('"') {
            return Err(ClusterError::Command {
                action: "pg_ctl start".into(),
                detail: "the data directory path must not contain quotes".into(),
            });
        }
        let options = format!(
            "-c listen_addresses='' -k '{root}' -p {SOCKET_PORT} -c unix_socket_permissions=0700"
        );
        let recovering = self.data_dir().join(RECOVERY_SIGNAL).is_file();
        let log_start = fs::metadata(self.log_file()).map_or(0, |m| m.len());
        self.run(
            "pg_ctl start",
            self.command("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", &START_TIMEOUT_SECS.to_string(), "-o", &options]),
        )?;
        if recovering {
            self.wait_for_recovery(log_start)?;
        }
        Ok(())
    }

    /// A data directory restored from a base backup with `recovery.signal` (point-in-time
    /// recovery, README "Backups") replays archived WAL up to its target before it takes
    /// writes, while pg_ctl returns once it accepts read-only connections. Waits for the end
    /// of recovery, however long the replay takes, unless PostgreSQL stops or pauses.
    fn wait_for_recovery(&self, log_start: u64) -> Result<(), ClusterError> {
        let started = std::time::Instant::now();
        let mut reported = 0;
        loop {
            let log = self.log_since(log_start);
            if log.contains(READY_FOR_WRITES) {
                tracing::info!(
                    secs = started.elapsed().as_secs(),
                    "PostgreSQL finished recovery"
                );
                return Ok(());
            }
            let fail = |detail: &str| ClusterError::Command {
                action: "point-in-time recovery".into(),
                detail: format!("{detail} {}", self.log_tail()),
            };
            if log.contains("pausing at the end of recovery") || log.contains("recovery has paused")
            {
                let error = fail(
                    "PostgreSQL paused at the recovery target, read-only: add recovery_target_action = 'promote' to postgresql.auto.conf and start again.",
                );
                // Stopped, it resumes from its last restart point when started again.
                if let Err(e) = self.stop() {
                    tracing::warn!(error = %e, "could not stop the paused PostgreSQL");
                }
                return Err(error);
            }
            if !self.is_running() {
                return Err(fail("PostgreSQL stopped during recovery."));
            }
            let minutes = started.elapsed().as_secs() / 60;
            if minutes > reported {
                reported = minutes;
                tracing::info!(minutes, "PostgreSQL is still replaying archived WAL");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the server log gained since `offset` (a byte position).
    fn log_since(&self, offset: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut bytes = Vec::new();
        if let Ok(mut log) = fs::File::open(self.log_file())
            && log.seek(SeekFrom::Start(offset)).is_ok()
        {
            let _ = log.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Fast shutdown: open sessions are ended, data is flushed.
    pub fn stop(&self) -> Result<(), ClusterError> {
        if !self.is_running() {
            return Ok(());
        }
        self.run(
            "pg_ctl stop",
            self.command("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60"]),
        )?;
        Ok(())
    }

    fn owner_file(&self) -> PathBuf {
        self.root.join("owner")
    }

    fn lock(&self) -> Result<Flock<fs::File>, ClusterError> {
        let path = self.root.join("daygle.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io_err("lock", &path)(e.into()))
    }

    /// Makes sure the cluster is up for this process and says whether this process must stop it.
    pub fn acquire(&self, tenure: Tenure) -> Result<Lease, ClusterError> {
        let _lock = self.lock()?;
        let me = ProcessId::current();
        if self.is_running() {
            let owner = Owner::read(&self.owner_file());
            let owner_alive = owner.as_ref().is_some_and(|o| o.process.is_alive());
            let take_over = match &owner {
                _ if !owner_alive => true,
                Some(o) => tenure == Tenure::Server && o.tenure != Tenure::Server.tag(),
                None => true,
            };
            if take_over {
                tracing::info!(dir = %self.root.display(), adopted_from = ?owner.map(|o| o.process.pid), "using the running private PostgreSQL cluster");
                self.write_owner(&me, tenure)?;
            }
            return Ok(Lease {
                cluster: self.clone(),
                me,
                released: false,
            });
        }
        if !self.is_initialised() {
            tracing::info!(dir = %self.root.display(), "creating the private PostgreSQL cluster (first run)");
            self.init()?;
        }
        self.start()?;
        self.write_owner(&me, tenure)?;
        Ok(Lease {
            cluster: self.clone(),
            me,
            released: false,
        })
    }

    fn write_owner(&self, me: &ProcessId, tenure: Tenure) -> Result<(), ClusterError> {
        let path = self.owner_file();
        let mut f = fs::File::create(&path).map_err(io_err("write", &path))?;
        writeln!(f, "{} {} {}", me.pid, me.start_time, tenure.tag()).map_err(io_err("write", &path))
    }
}

/// This process's use of the cluster. `release` stops it when this process owns it; so does
/// dropping the lease unreleased (an early return, a panic), so a failed command never leaves
/// its cluster running.
#[derive(Debug)]
pub struct Lease {
    cluster: Cluster,
    me: ProcessId,
    /// Set by `release`, so `Drop` does not stop the cluster a second time.
    released: bool,
}

impl Lease {
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn owns_cluster(&self) -> bool {
        Owner::read(&self.cluster.owner_file()).is_some_and(|o| o.process == self.me)
    }

    /// Stops the cluster if this process is its owner.
    pub fn release(mut self) -> Result<(), ClusterError> {
        self.released = true;
        self.stop_if_owner()
    }

    fn stop_if_owner(&self) -> Result<(), ClusterError> {
        let _lock = self.cluster.lock()?;
        if self.owns_cluster() {
            if self.cluster.is_running() {
                tracing::info!(dir = %self.cluster.root.display(), "stopping the private PostgreSQL cluster");
                self.cluster.stop()?;
            }
            let _ = fs::remove_file(self.cluster.owner_file());
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = self.stop_if_owner()
        {
            tracing::warn!(error = %e, "could not stop the private PostgreSQL cluster");
        }
    }
}

/// A process identified by pid and start time, so a recycled pid is not mistaken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessId {
    pid: i32,
    start_time: u64,
}

impl ProcessId {
    fn current() -> Self {
        let pid = std::process::id() as i32;
        Self {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
        }
    }

    fn is_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

struct Owner {
    process: ProcessId,
    tenure: String,
}

impl Owner {
    fn read(path: &Path) -> Option<Self> {
        let text = fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let start_time = parts.next()?.parse().ok()?;
        let tenure = parts.next()?.to_string();
        Some(Self {
            process: ProcessId { pid, start_time },
            tenure,
        })
    }
}

/// A running (not zombie) process whose command line names postgres.
fn is_live_postgres(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("postgres"))
        .unwrap_or(false)
}

/// Field 22 of /proc/<pid>/stat: clock ticks since boot when the process started.
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Waits for a freshly started server to accept a connection (pg_ctl -w already does most).
pub async fn wait_until_accepting(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut last = None;
    for _ in 0..50 {
        match options.connect().await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or(sqlx::Error::PoolTimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bogus_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        let other = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!other.is_alive());
    }
}
