//! Turning stored mail into something safe to show: pure functions, no I/O.

pub mod chart;
pub mod csv;
pub mod format;
pub mod highlight;
pub mod html;
pub mod text;
