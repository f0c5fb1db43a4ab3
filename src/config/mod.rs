//! Settings: built-in defaults < `daygle_mail_archiver.conf` (INI) < `DAYGLE__SECTION__KEY`.
//!
//! `sections` holds the typed sections and their defaults, `load` reads and layers the
//! sources, `validate` reports every problem at once, one line each.

mod api;
mod data_dir;
mod load;
mod oauth;
mod oidc;
mod proxies;
mod secret_files;
mod sections;
mod validate;

pub use api::ApiSettings;
pub use data_dir::{SYSTEM_DATA_DIR, automatic_data_dir};
pub use load::{DEFAULT_CONFIG_FILE, load, load_from};
pub use oauth::{GoogleSettings, MicrosoftSettings, read_secret_file};
pub use oidc::{GroupMap, OidcSettings, parse_group_map};
pub use proxies::{IpNet, client_ip, parse_networks};
pub use sections::*;
pub use validate::{ConfigErrors, EXAMPLE_SEALING_KEY, EXAMPLE_SESSION_KEY, Problem};
