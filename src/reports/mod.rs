//! What the archive holds and how it is doing, as numbers: the dashboard's health and totals,
//! and the daily series behind its charts. Read-only queries; no web types here.

pub mod health;
pub mod monthly;
pub mod series;
pub mod totals;
