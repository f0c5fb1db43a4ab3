//! The archive's lifetime: retention policies with a preview that matches the purge, legal
//! holds that beat every deletion, manual deletion (optionally four-eyes), subject access and
//! erasure, blob collection and deletion statistics. Every change here is one function that
//! opens its transaction, checks its rules, writes its audit row and commits; the CLI and the
//! web pages only parse, call and render.

pub mod bulk;
pub mod erasure;
pub mod holds;
pub mod plan;
pub mod policies;
pub mod preview;
pub mod purge;
pub mod remove;
pub mod requests;
pub mod schedule;
pub mod scope;
pub mod stats;

pub use holds::HeldFilter;
pub use plan::Plan;
pub use remove::Cause;
