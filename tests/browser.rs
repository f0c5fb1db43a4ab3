//! Real headless Chromium through the UI: first run, sign-in, per-archive access (issue #3);
//! hostile e-mail HTML that must not run or load anything (issue #5); single sign-on through a
//! provider (issue #18).

mod common;

mod browser {
    mod connect;
    mod driver;
    mod hostile;
    mod layout;
    mod live;
    mod people;
    mod sso;
}
