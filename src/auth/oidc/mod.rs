//! Single sign-on through an OpenID Connect provider (issue #18): `provider` speaks OIDC
//! (discovery, authorization code with PKCE, ID-token validation), `signin` turns a validated
//! identity into a local user, `mapping` is the group → role / archive rule.

pub mod mapping;
pub mod provider;
pub mod signin;

pub use provider::{CALLBACK_PATH, Identity, Provider, Refusal};
