//! The keys a backup may carry (`--include-keys`): where each is read from, and where a
//! restore puts it. Without them the sealed IMAP passwords, the quarantine and the audit seals
//! of a restored archive cannot be opened.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{Secret, SecuritySettings};
use crate::error::{Error, Result};

pub(super) const NAMES: [&str; 3] = ["sealing_key", "session_key", "audit_key"];

/// Where the key `name` comes from: the config value, else its configured file, else the data
/// directory's `secrets/` folder.
enum Source<'a> {
    Value(&'a Secret),
    File(PathBuf),
}

fn source<'a>(security: &'a SecuritySettings, name: &str, data_dir: &Path) -> Source<'a> {
    let (value, file) = match name {
        "sealing_key" => (&security.sealing_key, &security.sealing_key_file),
        "session_key" => (&security.session_key, &security.session_key_file),
        _ => (&security.audit_key, &security.audit_key_file),
    };
    if !value.is_empty() {
        Source::Value(value)
    } else if !file.trim().is_empty() {
        Source::File(PathBuf::from(file.trim()))
    } else {
        Source::File(data_dir.join("secrets").join(name))
    }
}

fn read(source: &Source<'_>) -> Result<Option<Zeroizing<String>>> {
    match source {
        Source::Value(v) => Ok(Some(Zeroizing::new(v.expose().trim().to_string()))),
        Source::File(path) if !path.exists() => Ok(None),
        Source::File(path) => fs::read_to_string(path)
            .map(|t| Some(Zeroizing::new(t.trim().to_string())))
            .map_err(|e| Error::context(format!("read key file {}", path.display()), e)),
    }
}

/// The keys in use, by name (a key never created yet is left out).
pub(super) fn gather(
    security: &SecuritySettings,
    data_dir: &Path,
) -> Result<Vec<(&'static str, Zeroizing<String>)>> {
    let mut out = Vec::new();
    for name in NAMES {
        if let Some(text) = read(&source(security, name, data_dir))? {
            out.push((name, text));
        }
    }
    Ok(out)
}

/// Puts restored keys where this configuration looks for them. A key already there must be
/// the same one: a different key would make the restored secrets unreadable, so that is an
/// error (nothing is written). With `dry_run` only the check is done.
pub(super) fn install(
    keys: &[(String, Zeroizing<String>)],
    security: &SecuritySettings,
    data_dir: &Path,
    dry_run: bool,
) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (name, text) in keys {
        if !NAMES.contains(&name.as_str()) {
            continue;
        }
        let source = source(security, name, data_dir);
        if let Some(existing) = read(&source)? {
            if existing.as_str() != text.trim() {
                return Err(Error::Conflict(format!(
                    "a different {name} is already configured; move it away (or restore without \
                     the backup's keys) so the restored secrets stay readable"
                )));
            }
            continue;
        }
        let Source::File(path) = source else { continue };
        if !dry_run {
            write_key(&path, text)?;
        }
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn write_key(path: &Path, text: &str) -> Result<()> {
    let io =
        |action: &str, e: std::io::Error| Error::context(format!("{action} {}", path.display()), e);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restrict permissions of", e))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create", e))?;
    f.write_all(text.trim().as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| io("write", e))
}
