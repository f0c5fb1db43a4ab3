//! `daygle verify audit`: walks the audit log's hash chain and checks its HMAC seals.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use daygle::audit::chain;
use daygle::audit::seal::Checkpoint;
use daygle::config::Settings;
use daygle::db;
use daygle::secrets::Keys;

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Check that no audit row was changed, removed or reordered. Exit 1 at the first broken
    /// link. Prints the newest seal (`<entry>:<mac>`): keep it elsewhere as a checkpoint.
    Audit {
        /// A checkpoint printed by an earlier run: fail unless the log still holds it.
        #[arg(long, value_name = "ENTRY:MAC")]
        since_checkpoint: Option<String>,
    },
}

pub async fn run(settings: Settings, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    match command {
        VerifyCommand::Audit { since_checkpoint } => {
            let checkpoint = match since_checkpoint.as_deref().map(Checkpoint::parse) {
                None => None,
                Some(Some(c)) => Some(c),
                Some(None) => bail!(
                    "--since-checkpoint takes ENTRY:MAC as printed by an earlier `daygle verify audit`"
                ),
            };
            let key = Keys::load_audit_key(&settings.security, &settings.data_dir())
                .context("Failed to load the audit key (security.audit_key_file or <data_dir>/secrets/audit_key)")?;
            let database = db::open_for_command(&settings)
                .await
                .context("Failed to open the database")?;
            let result = chain::verify(&database.pool, &key, checkpoint.as_ref()).await;
            database.close().await?;
            let v = result.context("Failed to read the audit log")?;
            match v.broken {
                None => {
                    println!("audit log intact: {} entries, chain verified", v.rows);
                    match &v.sealed {
                        Some(head) => println!("head seal (keep as a checkpoint): {head}"),
                        None => println!(
                            "no seal yet: the log is not yet proven against the database owner"
                        ),
                    }
                    if v.unsealed > 0 {
                        println!(
                            "{} newer entries are not sealed yet (the server seals every few seconds)",
                            v.unsealed
                        );
                    }
                    if let Some(c) = &checkpoint {
                        println!("checkpoint {} still holds", c.seq);
                    }
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
