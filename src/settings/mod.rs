//! Settings an administrator changes at runtime (issue #17): the catalogue of those keys, the
//! values stored in the `settings` table, and [`Live`], the effective settings every task reads.
//!
//! Precedence, lowest first: built-in default < value stored here < config file <
//! environment < command-line flag. A key the file, environment or a flag sets is locked: the
//! settings page shows where it comes from and does not offer to change it.

mod catalogue;
pub mod store;

use std::sync::{Arc, RwLock};

pub use catalogue::{
    FIELDS, Field, Kind, OIDC as GROUP_OIDC, SESSIONS as GROUP_SESSIONS, SMTP as GROUP_SMTP,
    SYNC as GROUP_SYNC, field, masked,
};

use crate::config::{Problem, Settings};

/// The effective settings, re-read from the database after a change (and every half minute,
/// so several processes on one database agree).
pub struct Live {
    base: Settings,
    current: RwLock<Arc<Settings>>,
}

impl Live {
    /// Starts with the loaded settings; stored values apply from the first [`store::reload`].
    pub fn new(base: Settings) -> Self {
        Self {
            current: RwLock::new(Arc::new(base.clone())),
            base,
        }
    }

    /// The settings in force now.
    pub fn get(&self) -> Arc<Settings> {
        self.current
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// The settings from defaults, file, environment and flags, without stored values.
    pub fn base(&self) -> &Settings {
        &self.base
    }

    fn replace(&self, settings: Settings) {
        let next = Arc::new(settings);
        match self.current.write() {
            Ok(mut s) => *s = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// `base` with every stored value applied, except on keys the file, environment or a flag
/// set. Returns the problems [`Settings::validate`] finds with the result, plus values that do
/// not parse, in the config file's words.
pub fn effective(base: &Settings, stored: &[(String, String)]) -> (Settings, Vec<Problem>) {
    let mut settings = base.clone();
    let mut problems = Vec::new();
    for (key, value) in stored {
        let Some(f) = field(key) else { continue };
        if base.origins.get(key).is_some() {
            continue;
        }
        if let Err(message) = f.apply(&mut settings, value) {
            problems.push(Problem {
                key: key.clone(),
                message,
            });
        }
    }
    problems.extend(settings.validate());
    (settings, problems)
}
