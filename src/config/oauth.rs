//! `[google]` and `[microsoft]`: the OAuth2 clients and API endpoints of the Gmail and Microsoft
//! Graph sources. Endpoints default to the public services; they are settings for national
//! clouds and for tests. Secrets are named by `*_file` keys and read when used, never taken from
//! the command line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::validate::problem;
use super::{Problem, Settings};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleSettings {
    /// OAuth client id (Google Cloud console → Credentials) for "Connect Google account".
    pub client_id: String,
    /// File holding the OAuth client secret of `client_id`.
    pub client_secret_file: String,
    /// Service account key (JSON, from the console) with domain-wide delegation, for mailboxes
    /// added with `daygle account add --kind gmail` (no browser, no per-user consent).
    pub service_account_key_file: String,
    pub auth_url: String,
    pub token_url: String,
    /// Base URL before `/gmail/v1/...`.
    pub api_url: String,
}

impl Default for GoogleSettings {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret_file: String::new(),
            service_account_key_file: String::new(),
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            api_url: "https://gmail.googleapis.com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MicrosoftSettings {
    /// Directory (tenant) id or domain; `organizations` lets any work account connect in the
    /// browser. App-only access (client credentials) needs the real tenant id.
    pub tenant_id: String,
    /// Application (client) id of the app registration (Microsoft Entra admin center).
    pub client_id: String,
    /// File holding a client secret of the app registration.
    pub client_secret_file: String,
    /// `{tenant}` is replaced by `tenant_id`.
    pub auth_url: String,
    /// `{tenant}` is replaced by `tenant_id`.
    pub token_url: String,
    /// Base URL before `/v1.0/...`.
    pub api_url: String,
}

impl Default for MicrosoftSettings {
    fn default() -> Self {
        Self {
            tenant_id: "organizations".into(),
            client_id: String::new(),
            client_secret_file: String::new(),
            auth_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize".into(),
            token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token".into(),
            api_url: "https://graph.microsoft.com".into(),
        }
    }
}

impl MicrosoftSettings {
    /// `auth_url` with the tenant filled in.
    pub fn auth_endpoint(&self) -> String {
        self.auth_url.replace("{tenant}", self.tenant_id.trim())
    }

    /// `token_url` with the tenant filled in.
    pub fn token_endpoint(&self) -> String {
        self.token_url.replace("{tenant}", self.tenant_id.trim())
    }
}

/// Reads a secret named by a `*_file` setting: the file's content without its trailing
/// newline. `key` names the setting in the error.
pub fn read_secret_file(key: &str, path: &str) -> crate::error::Result<zeroize::Zeroizing<String>> {
    if path.trim().is_empty() {
        return Err(crate::error::Error::invalid(
            key,
            "is not set (name the file that holds the secret)",
        ));
    }
    let text = std::fs::read_to_string(PathBuf::from(path.trim())).map_err(|e| {
        crate::error::Error::invalid(key, format!("cannot read {}: {e}", path.trim()))
    })?;
    Ok(zeroize::Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

fn check_url(p: &mut Vec<Problem>, key: &str, url: &str) {
    let url = url.trim();
    let ok = url.starts_with("https://") || url.starts_with("http://");
    if !ok {
        p.push(problem(
            key,
            format!("`{url}` must be an http:// or https:// URL"),
        ));
    }
}

fn check_file(p: &mut Vec<Problem>, key: &str, path: &str) {
    if !path.trim().is_empty() && !std::path::Path::new(path.trim()).is_file() {
        p.push(problem(key, format!("file {} does not exist", path.trim())));
    }
}

impl Settings {
    /// Problems of `[google]` and `[microsoft]`.
    pub(super) fn validate_oauth(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let g = &self.google;
        check_url(&mut p, "google.auth_url", &g.auth_url);
        check_url(&mut p, "google.token_url", &g.token_url);
        check_url(&mut p, "google.api_url", &g.api_url);
        check_file(&mut p, "google.client_secret_file", &g.client_secret_file);
        check_file(
            &mut p,
            "google.service_account_key_file",
            &g.service_account_key_file,
        );
        let m = &self.microsoft;
        check_url(&mut p, "microsoft.auth_url", &m.auth_url);
        check_url(&mut p, "microsoft.token_url", &m.token_url);
        check_url(&mut p, "microsoft.api_url", &m.api_url);
        check_file(
            &mut p,
            "microsoft.client_secret_file",
            &m.client_secret_file,
        );
        if m.tenant_id.trim().is_empty() {
            p.push(problem(
                "microsoft.tenant_id",
                "must not be empty (your tenant id, or organizations)",
            ));
        }
        p
    }
}
