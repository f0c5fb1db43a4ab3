//! Secrets handed over as files (Docker secrets, systemd credentials): `database.password_file`
//! and `smtp.password_file` and `oidc.client_secret_file` name a file whose content, without its trailing newline, is the
//! password. Read once when the settings load, so every user of the settings sees the value.
//! (The keys' own `security.*_key_file` settings are read where the keys load.)

use super::validate::problem;
use super::{Problem, Secret, Settings};

/// Fills `database.url`'s password from `database.password_file` and `smtp.password` from
/// `smtp.password_file`; one problem per file that cannot be used.
pub(super) fn read_secret_files(settings: &mut Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(password) = read(
        "database.password_file",
        &settings.database.password_file,
        &mut problems,
    ) {
        let url = settings.database.url.expose().trim();
        match url::Url::parse(url) {
            _ if url.is_empty() => problems.push(problem(
                "database.password_file",
                "is only used with database.url (the private cluster needs no password); set database.url or remove it",
            )),
            // validate() names the malformed URL.
            Err(_) => {}
            Ok(parsed) if parsed.password().is_some() => problems.push(problem(
                "database.password_file",
                "is set while database.url holds a password too; keep only one of the two",
            )),
            Ok(mut parsed) => match parsed.set_password(Some(password.expose())) {
                Ok(()) => settings.database.url = Secret::new(parsed.to_string()),
                Err(()) => problems.push(problem(
                    "database.url",
                    "names no host to log in to, so database.password_file cannot be used",
                )),
            },
        }
    }
    if let Some(password) = read(
        "smtp.password_file",
        &settings.smtp.password_file,
        &mut problems,
    ) {
        if settings.smtp.password.is_empty() {
            settings.smtp.password = password;
        } else {
            problems.push(problem(
                "smtp.password_file",
                "is set together with smtp.password; keep only one of the two",
            ));
        }
    }
    if let Some(secret) = read(
        "oidc.client_secret_file",
        &settings.oidc.client_secret_file,
        &mut problems,
    ) {
        if settings.oidc.client_secret.is_empty() {
            settings.oidc.client_secret = secret;
        } else {
            problems.push(problem(
                "oidc.client_secret_file",
                "is set together with oidc.client_secret; keep only one of the two",
            ));
        }
    }
    problems
}

/// The file's content without trailing line breaks; `None` (and a problem) when it cannot be
/// read or is empty, `None` alone when no file is configured.
fn read(key: &str, path: &str, problems: &mut Vec<Problem>) -> Option<Secret> {
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => {
            problems.push(problem(key, format!("{path} is empty")));
            None
        }
        Ok(text) => Some(Secret::new(text.trim_end_matches(['\r', '\n']))),
        Err(e) => {
            problems.push(problem(key, format!("cannot read {path}: {e}")));
            None
        }
    }
}
