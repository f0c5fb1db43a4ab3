use std::process::ExitCode;

use anyhow::Context;

use daygle::config::Settings;
use daygle::db;

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let database = db::open_for_command(&settings)
        .await
        .context("Failed to open the database")?;
    let before = db::migration_status(&database.pool).await?;
    db::migrate(&database.pool)
        .await
        .context("Failed to migrate")?;
    let after = db::migration_status(&database.pool).await?;
    println!(
        "migrations: {} applied now, {} of {} in total",
        before.pending.len(),
        after.applied,
        after.expected
    );
    database.close().await?;
    Ok(ExitCode::SUCCESS)
}
