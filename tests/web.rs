//! People and trust (issue #3) against the real app and PostgreSQL.

mod common;

mod web {
    mod alerts;
    mod api;
    mod audit;
    mod cli;
    mod connect;
    mod csrf;
    mod dashboard;
    mod delegation;
    mod delete_results;
    mod floods;
    mod login;
    mod logs;
    mod matrix;
    mod oidc;
    mod oidc_guards;
    mod outage;
    mod people;
    mod reach;
    mod reports;
    mod retention;
    mod sessions;
    mod settings;
    mod setup;
    mod sync_now;
    mod users;
}
