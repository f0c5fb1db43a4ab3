//! `daygle verify audit`: walks the audit log's hash chain.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use daygle::audit::chain;
use daygle::config::Settings;

use super::context::{Schema, with_database};

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Check that no audit row was changed, removed or reordered. Exit 1 at the first broken link.
    Audit,
}

/// Runs the chosen integrity check; exit 1 when it finds a problem.
pub async fn run(settings: Settings, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Audit => {
            let v = with_database(settings, Schema::AsIs, async |ctx| {
                chain::verify(ctx.pool())
                    .await
                    .context("Failed to read the audit log")
            })
            .await?;
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
