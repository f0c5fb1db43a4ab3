//! HTTP plumbing shared by every page: state, routing table, the guard and session layers,
//! extractors, error pages, the page layout, security headers, static assets, metrics,
//! downloads and the health endpoints. Pages live in `web::pages`.

pub mod assets;
pub mod client;
pub mod cookies;
pub mod download;
pub mod error;
pub mod extract;
pub mod guard;
pub mod headers;
pub mod health;
pub mod layout;
pub mod metrics;
pub mod outage;
pub mod routes;
pub mod session;
pub mod state;
