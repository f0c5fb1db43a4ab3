//! Running the real `daygle` binary: a clean environment, and a handle on `serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::daygle_bin;

/// `daygle` with no inherited DAYGLE__ variables, run from `dir` (so no stray config is read).
/// Without a configured data directory it uses `dir/data`, also as root (whose automatic one,
/// /var/lib/daygle, parallel test runs must not share).
pub fn daygle(dir: &Path) -> Command {
    in_clean_env(Command::new(daygle_bin()), dir)
}

/// `sh -ec SCRIPT` as an operator's shell runs it: in `dir`, the environment of [`daygle`],
/// with `daygle` and the PostgreSQL tools of the version the private cluster uses on `PATH`.
pub fn shell(dir: &Path, script: &str) -> Command {
    let mut path = vec![daygle_bin().parent().expect("bin dir").to_path_buf()];
    path.extend(daygle::db::cluster::find_bin_dir(""));
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut cmd = Command::new("sh");
    cmd.args(["-ec", script])
        .env("PATH", std::env::join_paths(path).expect("PATH"));
    in_clean_env(cmd, dir)
}

fn in_clean_env(mut cmd: Command, dir: &Path) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("DAYGLE") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env("STATE_DIRECTORY", dir.join("data"))
        .stdin(Stdio::null());
    cmd
}

/// A temporary directory that the unprivileged PostgreSQL user can traverse (when tests run
/// as root, the private cluster runs as `postgres`).
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A running `daygle serve` process.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// The data directory `serve` printed at start.
    pub data_dir: Option<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `daygle serve` in `dir` with the given extra args/env and waits for its URL.
    pub fn start(dir: &Path, data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        let mut cmd = daygle(dir);
        cmd.arg("--data-dir").arg(data_dir);
        Self::spawn(cmd, envs)
    }

    /// Starts `daygle serve` in `dir` with no data directory given: the automatic one.
    pub fn start_plain(dir: &Path, envs: &[(&str, &str)]) -> Self {
        Self::spawn(daygle(dir), envs)
    }

    fn spawn(mut cmd: Command, envs: &[(&str, &str)]) -> Self {
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn daygle serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut data_dir = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Data directory: ") {
                    data_dir = Some(rest.to_string());
                }
                if let Some(rest) = line.split("running at ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = url_tx.send((url, data_dir.clone()));
                }
            }
        });
        match url_rx.recv_timeout(Duration::from_secs(90)) {
            Ok((url, data_dir)) => Self {
                child,
                url,
                data_dir,
                stderr: err_rx,
            },
            Err(_) => {
                let _ = child.kill();
                let log: Vec<String> = err_rx.try_iter().collect();
                panic!("daygle serve printed no URL; stderr:\n{}", log.join("\n"));
            }
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("send signal");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(mut self, limit: Duration) -> (Option<i32>, Vec<String>) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), self.stderr.try_iter().collect());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("daygle did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PIDs of PostgreSQL processes serving the cluster under `data_dir`.
pub fn postgres_processes(data_dir: &Path) -> Vec<i32> {
    let needle = data_dir
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(data_dir));
    let needle = needle.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c).replace('\0', " ");
                    c.contains("postgres") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Blocking GET returning (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    super::install_tls_provider();
    rt.block_on(async {
        let res = reqwest::get(url).await.expect("GET");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    })
}
