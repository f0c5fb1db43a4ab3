//! `daygle delete` and `daygle erase`: manual deletion and subject erasure from scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use daygle::archive::listing::Filters;
use daygle::archive::search;
use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::config::Settings;
use daygle::retention::{bulk, erasure, requests};

use super::context::{Schema, with_database};

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Only this archive account.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// The search whose results are deleted, e.g. 'from:spam@example.com before:2020-01-01'.
    #[arg(long, value_name = "QUERY")]
    pub query: String,
    /// Why (kept in the audit log and the deletion record).
    #[arg(long)]
    pub reason: String,
    /// Really delete (with retention.require_approval: file the request).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The person's e-mail address(es): mail from, to, cc or bcc any of them.
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// Why (kept in the audit log and the erasure record).
    #[arg(long)]
    pub reason: String,
    /// First export everything found to this zip file (with manifest.csv); must not exist.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Really erase.
    #[arg(long)]
    pub yes: bool,
}

pub async fn delete(settings: Settings, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let query = search::parse(&args.query).map_err(|e| anyhow::anyhow!("--query: {e}"))?;
    if query.is_empty() {
        bail!("--query must not be empty (to delete everything, use a retention policy)");
    }
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let account_id = match &args.account {
            Some(name) => Some(ctx.account(name).await?.id),
            None => None,
        };
        // The operator at the console reads every archive, as the database owner could anyway.
        let grants = Grants::All;
        let filters = Filters { account_id, ..Filters::default() };
        let text = match &args.account {
            Some(name) => format!("{} (account {name})", args.query),
            None => args.query.clone(),
        };
        let search = bulk::Search { query: &query, filters: &filters, text: &text };
        let preview = bulk::preview(pool, &grants, &search).await?;
        let (count, held) = (preview.summary.messages, preview.summary.held);
        if !args.yes {
            println!("{count} messages match; {held} of them are under a legal hold and would stay");
            bail!("Refusing to delete without --yes");
        }
        if count == 0 {
            println!("0 messages match; nothing to delete");
            return Ok(ExitCode::SUCCESS);
        }
        let require_approval = ctx.settings.retention.require_approval;
        let done = bulk::delete(pool, &Actor::cli(), &grants, &search, Some(&preview.pin), &args.reason, require_approval).await?;
        match done.outcome {
            requests::Outcome::Pending => println!(
                "deletion request #{} for {} messages waits for approval by a second user with delete_mail",
                done.id, done.messages
            ),
            requests::Outcome::Done(e) => println!(
                "deleted {} messages; {} held messages kept; freed {:.1} MB (request #{})",
                e.deleted, e.kept_held, e.collected.bytes as f64 / 1e6, done.id
            ),
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn erase(settings: Settings, args: EraseArgs) -> anyhow::Result<ExitCode> {
    let addresses = erasure::parse_addresses(&args.addresses)?;
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let grants = Grants::All;
        let ids = erasure::find(pool, &grants, &addresses).await?;
        if !args.yes {
            let (count, held) = requests::count_selection(pool, &grants, &ids).await?;
            println!(
                "{count} messages found; {held} of them are under a legal hold and would stay"
            );
            bail!("Refusing to erase without --yes");
        }
        let file = match &args.export {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .with_context(|| {
                        format!("Failed to create {} (it must not exist)", path.display())
                    })?,
            ),
            None => None,
        };
        let done =
            erasure::erase(pool, &Actor::cli(), &grants, &addresses, &args.reason, file).await;
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                if let Some(path) = &args.export {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e).context("Erasure failed (the audit log shows what was erased)");
            }
        };
        if let (Some(path), Some(x)) = (&args.export, done.exported) {
            println!("exported {} messages to {}", x.messages, path.display());
        }
        println!(
            "erased {} of {} messages; {} held messages kept; record #{}",
            done.executed.deleted, done.found, done.executed.kept_held, done.request_id
        );
        Ok(ExitCode::SUCCESS)
    })
    .await
}
