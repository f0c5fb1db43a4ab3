//! `daygle workers`: the `serve` processes on this database (role, leader, accounts held) and
//! what the background sync workers are doing (the `workers` table).

use std::process::ExitCode;

use daygle::config::Settings;
use daygle::ingest::{processes, workers};

use super::context::{Schema, with_database};

/// Prints each worker's state, last run and last error.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    super::context::require_archive(&settings)?;
    let lease_secs = i32::try_from(settings.workers.lease_secs).unwrap_or(30);
    let (processes, rows) = with_database(settings, Schema::Migrate, async |ctx| {
        Ok((
            processes::list(ctx.pool(), lease_secs, &daygle::auth::Grants::All).await?,
            workers::list(ctx.pool(), &daygle::auth::Grants::All).await?,
        ))
    })
    .await?;
    for p in &processes {
        let state = if p.alive {
            "alive"
        } else if p.stopped_at.is_some() {
            "stopped"
        } else {
            "not heard from"
        };
        println!(
            "process {} (role {}, {}{}): holds {}",
            p.label(),
            p.role,
            state,
            if p.leader { ", leader" } else { "" },
            if p.accounts.is_empty() {
                "no accounts".to_string()
            } else {
                p.accounts.join(", ")
            }
        );
    }
    if rows.is_empty() {
        println!("no worker has run yet");
    }
    let when = |t: Option<time::OffsetDateTime>| {
        t.map(|t| format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute()))
            .unwrap_or_else(|| "-".into())
    };
    for w in rows {
        println!(
            "{} ({}): {}{}; archived {}; last run {}, last success {}, next run {}",
            w.name,
            w.account_name.as_deref().unwrap_or("-"),
            w.state,
            w.activity.map(|a| format!(", {a}")).unwrap_or_default(),
            w.messages_archived,
            when(w.last_run_at),
            when(w.last_success_at),
            when(w.next_run_at),
        );
        if let Some(e) = w.last_error {
            println!(
                "  last error ({} failures in a row): {e}",
                w.consecutive_failures
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
