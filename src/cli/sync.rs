//! `daygle sync [--account NAME] [--once]`: sync accounts now, without the web server.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use daygle::config::Settings;
use daygle::db;
use daygle::ingest::accounts;
use daygle::ingest::scheduler::{self, RunResult};
use daygle::secrets::Keys;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this account (default: every enabled IMAP account).
    #[arg(long)]
    pub account: Option<String>,
    /// One pass, then exit (non-zero when an account failed). Without it, keep syncing on
    /// schedule until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

pub async fn run(settings: Settings, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let database = db::open_for_command(&settings)
        .await
        .context("Failed to open the database")?;
    db::migrate(&database.pool).await?;
    let pool = database.pool.clone();
    let keys = Keys::load(&settings.security, &settings.data_dir())
        .context("Failed to load the sealing key")?;
    daygle::reseal::upgrade_stored(&pool, &keys.sealing).await?;
    let code = if args.once {
        once(&pool, &settings, &keys, args.account.as_deref()).await?
    } else {
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        scheduler::run_until_stopped(
            pool.clone(),
            std::sync::Arc::new(settings.clone()),
            std::sync::Arc::new(keys),
            token,
        )
        .await;
        ExitCode::SUCCESS
    };
    database.close().await?;
    Ok(code)
}

async fn once(
    pool: &sqlx::PgPool,
    settings: &Settings,
    keys: &Keys,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let all = accounts::list(pool).await?;
    let chosen: Vec<_> = match only {
        Some(name) => {
            let a = all
                .into_iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
                .with_context(|| format!("no account named {name}; see `daygle account list`"))?;
            anyhow::ensure!(
                a.kind == "imap",
                "account {} is not an IMAP account",
                a.name
            );
            vec![a]
        }
        None => all
            .into_iter()
            .filter(|a| a.kind == "imap" && a.enabled)
            .collect(),
    };
    if chosen.is_empty() {
        println!("no enabled IMAP accounts to sync");
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
