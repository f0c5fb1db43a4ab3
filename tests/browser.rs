//! Real headless Chromium through the UI: first run, sign-in, per-archive access (issue #3);
//! hostile e-mail HTML that must not run or load anything (issue #5).

mod common;

mod browser {
    mod driver;
    mod hostile;
    mod layout;
    mod live;
    mod people;
}
