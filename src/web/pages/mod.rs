//! The pages of the UI, one module per area: its routes, handlers and templates. Handlers
//! parse the request, call the domain and render; the plumbing they share is in `web::http`.

pub mod account_connect;
pub mod accounts;
pub mod alerts;
pub mod archives;
pub mod audit;
pub mod auth;
pub mod dashboard_charts;
pub mod delete_results;
pub mod deletion;
pub mod home;
pub mod invitations;
pub mod logs;
pub mod message_list;
pub mod message_view;
pub mod password;
pub mod profile;
pub mod quarantine;
pub mod reports;
pub mod retention;
pub mod roles;
pub mod settings;
pub mod sso;
pub mod tokens;
pub mod users;
pub mod verify;
pub mod workers;
