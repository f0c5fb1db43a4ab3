use std::process::ExitCode;

use anyhow::Context;

use daygle::config::Settings;
use daygle::db;

use super::context::{Schema, with_database};

/// Applies pending migrations and reports how many there were.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    with_database(settings, Schema::AsIs, async |ctx| {
        let before = db::migration_status(ctx.pool()).await?;
        db::migrate(ctx.pool()).await.context("Failed to migrate")?;
        let after = db::migration_status(ctx.pool()).await?;
        println!(
            "migrations: {} applied now, {} of {} in total",
            before.pending.len(),
            after.applied,
            after.expected
        );
        Ok(ExitCode::SUCCESS)
    })
    .await
}
