//! Tests of the `daygle` binary and its configuration, run as a user would run them.

mod common;

mod cli {
    mod cluster;
    mod commands;
    mod config;
}
