//! Real headless Chromium through the UI (issue #3): first run, sign-in, per-archive access.

mod common;

mod browser {
    mod driver;
    mod people;
}
