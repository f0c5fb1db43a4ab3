//! `[api]`: the JSON API under `/api/v1` (bearer tokens, rate limits, CORS).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Requests one token may make per minute; more get 429 with Retry-After.
    pub rate_limit_per_minute: u32,
    /// Origins (scheme://host[:port]) whose browser scripts may call the API, comma-separated.
    /// Empty: no cross-origin calls (CORS closed).
    pub cors_origins: String,
    /// Hours a finished export stays downloadable before its file is removed.
    pub export_keep_hours: u32,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 600,
            cors_origins: String::new(),
            export_keep_hours: 24,
        }
    }
}

impl ApiSettings {
    /// The allowed CORS origins, or the problem with one of them.
    pub fn origins(&self) -> Result<Vec<String>, String> {
        super::split_list(&self.cors_origins)
            .into_iter()
            .map(|o| {
                let o = o.trim_end_matches('/').to_string();
                let ok = (o.starts_with("https://") || o.starts_with("http://"))
                    && !o.contains('*')
                    && o.split("://").nth(1).is_some_and(|h| !h.is_empty() && !h.contains('/'));
                if ok {
                    Ok(o)
                } else {
                    Err(format!(
                        "`{o}` is not an origin like https://tools.example.com (no paths, no wildcards)"
                    ))
                }
            })
            .collect()
    }
}
