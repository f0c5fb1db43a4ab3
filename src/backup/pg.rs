//! Running PostgreSQL's own `pg_dump` and `pg_restore` against the archive's database: the
//! private cluster (over its socket, with the binaries that run it) or `database.url`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Settings;
use crate::db::cluster;
use crate::error::{Error, Result};

/// How to reach the database with libpq tools. The password, if any, goes in the environment,
/// never on a command line other users can read.
#[derive(Clone)]
pub struct Target {
    bin: PathBuf,
    args: Vec<String>,
    password: Option<String>,
    /// What to call the database in messages (no password).
    pub label: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .finish()
    }
}

impl Target {
    pub fn for_settings(settings: &Settings) -> Result<Self> {
        let configured = settings.database.pg_bin_dir.clone();
        if settings.uses_embedded_database() {
            let root = crate::db::embedded_root(&settings.data_dir());
            let bin = tool_dir(&configured)?;
            return Ok(Self {
                bin,
                args: vec![
                    "--host".into(),
                    root.display().to_string(),
                    "--port".into(),
                    "5432".into(),
                    "--username".into(),
                    cluster::SUPERUSER.into(),
                    "--dbname".into(),
                    crate::db::EMBEDDED_DATABASE.into(),
                ],
                password: None,
                label: format!("the private cluster in {}", root.display()),
            });
        }
        let url = url::Url::parse(settings.database.url.expose())
            .map_err(|e| Error::invalid("database.url", format!("not a PostgreSQL URL: {e}")))?;
        let password = url.password().map(percent_decode);
        let mut safe = url.clone();
        let _ = safe.set_password(None);
        Ok(Self {
            bin: tool_dir(&configured)?,
            args: vec!["--dbname".into(), safe.to_string()],
            password,
            label: crate::config::mask_url_password(settings.database.url.expose()),
        })
    }

    /// `tool` (pg_dump, pg_restore) with the connection arguments and password set.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(&self.args).env("PGAPPNAME", "daygle-backup");
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd
    }

    pub fn tool_path(&self, tool: &str) -> PathBuf {
        self.bin.join(tool)
    }
}

/// The directory with pg_dump and pg_restore: `database.pg_bin_dir`, else the newest
/// PostgreSQL installed (the same search the private cluster uses), else `PATH`.
fn tool_dir(configured: &str) -> Result<PathBuf> {
    let has = |d: &Path| d.join("pg_dump").is_file() && d.join("pg_restore").is_file();
    if let Ok(dir) = cluster::find_bin_dir(configured)
        && has(&dir)
    {
        return Ok(dir);
    }
    if !configured.trim().is_empty() && has(Path::new(configured.trim())) {
        return Ok(PathBuf::from(configured.trim()));
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has(d))
        .ok_or_else(|| {
            Error::Internal(
                "pg_dump and pg_restore were not found: install the PostgreSQL client tools \
                 (Debian: apt-get install postgresql-client) of the server's major version, or set \
                 database.pg_bin_dir"
                    .into(),
            )
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_decoded_for_the_environment() {
        assert_eq!(percent_decode("p%40ss%2Fw"), "p@ss/w");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
