//! Where daygle keeps its keys and private cluster when `storage.data_dir` is not set.

use std::ffi::OsString;
use std::path::PathBuf;

/// The data directory of a daygle started as root with no `storage.data_dir`.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/daygle";

/// The data directory when none is configured: systemd's `STATE_DIRECTORY` for a service with
/// `StateDirectory=`; else, as root, `/var/lib/daygle` like any system service, because the
/// private cluster runs as an unprivileged user who cannot reach a root-only home such as
/// `/root` (and daygle will not loosen permissions there); else `./data`.
pub fn automatic_data_dir(root: bool, state_directory: Option<OsString>) -> PathBuf {
    // systemd passes a colon-separated list when several directories are configured.
    if let Some(first) = state_directory
        .as_ref()
        .and_then(|d| d.to_str())
        .and_then(|d| d.split(':').next())
        .filter(|d| !d.is_empty())
    {
        return PathBuf::from(first);
    }
    if root {
        PathBuf::from(SYSTEM_DATA_DIR)
    } else {
        PathBuf::from("data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_automatic_data_dir_is_local_for_users_and_system_wide_for_root() {
        assert_eq!(automatic_data_dir(false, None), PathBuf::from("data"));
        assert_eq!(
            automatic_data_dir(true, None),
            PathBuf::from("/var/lib/daygle")
        );
        assert_eq!(
            automatic_data_dir(true, Some("/var/lib/dg:/var/lib/other".into())),
            PathBuf::from("/var/lib/dg")
        );
        let mut s = Settings::default();
        s.storage.data_dir = " /srv/archive ".into();
        assert_eq!(s.data_dir(), PathBuf::from("/srv/archive"));
    }
}
