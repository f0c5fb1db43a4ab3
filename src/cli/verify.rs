//! `daygle verify audit`: walks the audit log's hash chain.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use daygle::audit::chain;
use daygle::config::Settings;
use daygle::db;

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Check that no audit row was changed, removed or reordered. Exit 1 at the first broken link.
    Audit,
}

pub async fn run(settings: Settings, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Audit => {
            let database = db::open_for_command(&settings)
                .await
                .context("Failed to open the database")?;
            let result = chain::verify(&database.pool).await;
            database.close().await?;
            let v = result.context("Failed to read the audit log")?;
            match v.broken {
                None => {
                    println!("audit log intact: {} entries, chain verified", v.rows);
                    Ok(ExitCode::SUCCESS)
                }
                Some(link) => {
                    println!("audit log BROKEN at entry {}: {}", link.id, link.reason);
                    println!(
                        "entries before {} verified; do not trust entry {} or any after it",
                        link.id, link.id
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
