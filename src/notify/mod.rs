//! Alerts and the e-mail they send. One background evaluator ([`evaluator`]) checks every
//! trigger ([`triggers`]) each minute against the archive's state ([`conditions`]); an alert
//! opens once per condition and subject, stays open while the condition holds, and resolves
//! itself when it clears ([`alerts`]). New alerts go out by SMTP ([`mailer`]), as do
//! invitations and password reset links ([`people`]).

pub mod alerts;
pub mod conditions;
pub mod evaluator;
pub mod mailer;
pub mod people;
pub mod triggers;

pub use alerts::{Alert, Severity};
pub use triggers::{Trigger, TriggerConfig};
