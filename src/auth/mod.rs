//! People and trust: users, roles and permissions, per-archive grants, passwords, sign-in
//! with lockout, TOTP, CSRF tokens. No web framework in here; `web::http::extract` is the glue.

pub mod csrf;
pub mod delegation;
pub mod grants;
pub mod invitations;
pub mod login;
pub mod manage;
pub mod manage_roles;
pub mod oidc;
pub mod onetime;
pub mod password;
pub mod permissions;
pub mod profile;
pub mod refusals;
pub mod resets;
pub mod roles;
pub mod token_limits;
pub mod tokens;
pub mod totp;
pub mod users;

pub use grants::{Grants, VisibleAccount, visible_accounts};
pub use permissions::{Permission, PermissionSet};
