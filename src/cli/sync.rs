//! `daygle sync [--account NAME] [--once]`: sync accounts now, without the web server.

use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use daygle::config::Settings;
use daygle::ingest::accounts;
use daygle::ingest::scheduler::{self, RunResult};
use daygle::ingest::source::SYNCED_KINDS;
use daygle::secrets::Keys;

use super::context::{CliContext, Schema, with_database};

/// `daygle sync`: which accounts, once or on schedule.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this account (default: every enabled IMAP, Gmail and Microsoft 365 account).
    #[arg(long)]
    pub account: Option<String>,
    /// One pass, then exit (non-zero when an account failed). Without it, keep syncing on
    /// schedule until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

/// One pass over the chosen accounts (`--once`), or syncing on schedule until Ctrl-C.
pub async fn run(settings: Settings, args: SyncArgs) -> anyhow::Result<ExitCode> {
    with_database(settings, Schema::Migrate, async |ctx| {
        let keys = ctx.keys().await?;
        daygle::reseal::upgrade_stored(ctx.pool(), &keys.sealing).await?;
        // What an administrator set on the settings page applies here as in `serve`.
        let live = ctx.live_settings(&keys).await?;
        let effective = live.get();
        println!("{}", scanning_line(&effective.clamav));
        if args.once {
            return once(ctx, &effective, &keys, args.account.as_deref()).await;
        }
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        scheduler::run_until_stopped(
            ctx.pool().clone(),
            std::sync::Arc::new(live),
            std::sync::Arc::new(keys),
            scheduler::Assignment::Everything,
            token,
        )
        .await;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

async fn once(
    ctx: &CliContext,
    settings: &Settings,
    keys: &Keys,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let chosen: Vec<_> = match only {
        Some(name) => {
            let a = ctx.account(name).await?;
            anyhow::ensure!(
                SYNCED_KINDS.contains(&a.kind.as_str()),
                "account {} holds imported mail; it is not synced from a server",
                a.name
            );
            vec![a]
        }
        None => accounts::list(pool)
            .await?
            .into_iter()
            .filter(|a| SYNCED_KINDS.contains(&a.kind.as_str()) && a.enabled)
            .collect(),
    };
    if chosen.is_empty() {
        println!("no enabled IMAP, Gmail or Microsoft 365 accounts to sync");
        return Ok(ExitCode::SUCCESS);
    }
    let runs = scheduler::sync_accounts(pool, settings, &keys.sealing, chosen).await;
    let mut failed = false;
    for run in runs {
        match run.result {
            RunResult::Done(o) => println!(
                "{}: {} new messages archived ({} fetched, {} bytes) in {} folders; {} skipped, {} failed, {} deleted from the server",
                run.account,
                o.archived,
                o.fetched,
                o.bytes,
                o.folders,
                o.skipped,
                o.failed,
                o.deleted
            ),
            RunResult::Busy => println!(
                "{}: already being synced by another process; skipped",
                run.account
            ),
            RunResult::Failed(e) => {
                failed = true;
                eprintln!("{}: sync failed: {e}", run.account);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Says up front whether mail is scanned, so nobody assumes it was (the walk of issue #17).
fn scanning_line(clamav: &daygle::config::ClamavSettings) -> String {
    if clamav.enabled {
        format!(
            "virus scanning: on (clamd at {}, infected mail: {})",
            clamav.address, clamav.action
        )
    } else {
        "virus scanning: off ([clamav] enabled = false): mail is archived without a virus scan"
            .to_string()
    }
}
