//! In-process tests of the web app against real PostgreSQL.

mod common;

mod app {
    mod health;
    mod layout;
    mod lifecycle;
    mod stylesheets;
}
