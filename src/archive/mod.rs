//! The archive itself: stored messages and how they are found.

pub mod search;
