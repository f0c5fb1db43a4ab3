//! `daygle retention add|list|remove|preview|run`: retention policies from scripts.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::config::Settings;
use daygle::ingest::accounts;
use daygle::retention::{Plan, policies, preview, purge};

use super::context::{CliContext, Schema, with_database};

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Add a policy: mail in its scope older than --keep-days is purged.
    Add(AddArgs),
    /// List the policies.
    List,
    /// Remove a policy (the mail it covered stays).
    Remove { name: String },
    /// Show what a purge would delete now: one line per policy and account.
    Preview,
    /// Purge what the preview shows (asks for --yes), in batches; safe to re-run after a crash.
    Run {
        /// Really delete the mail.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    /// Keep mail this many days, counted from its date.
    #[arg(long, value_name = "N")]
    pub keep_days: i32,
    /// Only this archive account (repeat for several). Default: every account.
    #[arg(long, value_name = "NAME")]
    pub account: Vec<String>,
    /// Only folders matching this pattern (`*` = any characters).
    #[arg(long, value_name = "PATTERN")]
    pub folder: Option<String>,
    /// Only mail matching this search, e.g. 'from:newsletter@example.com'.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// Count age from the message date (falling back to the archive date) or the archive date.
    #[arg(long, default_value = "message", value_parser = ["message", "archived"])]
    pub age_basis: String,
    /// Add the policy switched off.
    #[arg(long)]
    pub disabled: bool,
}

pub async fn run(settings: Settings, cmd: RetentionCommand) -> anyhow::Result<ExitCode> {
    if matches!(cmd, RetentionCommand::List) {
        super::context::require_archive(&settings)?;
    }
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let actor = Actor::cli();
        match cmd {
            RetentionCommand::Add(args) => add(ctx, &actor, args).await,
            RetentionCommand::List => list(pool).await,
            RetentionCommand::Remove { name } => {
                let id = policies::id_by_name(pool, &name)
                    .await
                    .with_context(|| format!("No retention policy named {name}"))?;
                policies::remove(pool, &actor, &Grants::All, id).await?;
                println!("removed retention policy {name}");
                Ok(ExitCode::SUCCESS)
            }
            RetentionCommand::Preview => show_preview(pool).await.map(|_| ExitCode::SUCCESS),
            RetentionCommand::Run { yes } => run_purge(&ctx.settings, pool, &actor, yes).await,
        }
    })
    .await
}

/// Account names → ids; an unknown name is an error.
pub async fn account_ids(ctx: &CliContext, names: &[String]) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        ids.push(ctx.account(name).await?.id);
    }
    Ok(ids)
}

async fn add(ctx: &CliContext, actor: &Actor, args: AddArgs) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let input = policies::PolicyInput {
        name: args.name.clone(),
        account_ids: account_ids(ctx, &args.account).await?,
        folder_pattern: args.folder,
        query: args.query,
        keep_days: args.keep_days,
        age_basis: args.age_basis,
        enabled: !args.disabled,
    };
    let id = policies::save(pool, actor, &Grants::All, None, &input).await?;
    println!(
        "added retention policy {} (id {id}): keep {} days",
        args.name, args.keep_days
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(pool: &sqlx::PgPool) -> anyhow::Result<ExitCode> {
    let all = policies::list(pool, &Grants::All).await?;
    if all.is_empty() {
        println!("no retention policies: mail is kept forever");
    }
    for p in all {
        println!(
            "{}\tkeep {} days ({} date)\t{}\t{}",
            p.name,
            p.keep_days,
            p.age_basis,
            if p.enabled { "enabled" } else { "disabled" },
            p.scope_text()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn day(t: Option<time::OffsetDateTime>) -> String {
    t.map_or("-".into(), |t| t.date().to_string())
}

async fn show_preview(pool: &sqlx::PgPool) -> anyhow::Result<preview::Preview> {
    let plan = Plan::current(pool, &Grants::All).await?;
    let p = preview::preview(pool, &plan, 0).await?;
    if plan.policies.is_empty() {
        println!("no enabled retention policies: nothing would be purged");
    }
    for r in &p.rows {
        println!(
            "{}\t{}\t{} messages, {} ({} freed), oldest {}, newest {}{}",
            r.policy_name,
            r.account_name,
            r.messages,
            mb(r.bytes),
            mb(r.freed_bytes),
            day(r.oldest),
            day(r.newest),
            if r.held > 0 {
                format!(", {} held (kept)", r.held)
            } else {
                String::new()
            }
        );
    }
    println!(
        "total\t{} messages, {} ({} freed), {} held",
        p.messages(),
        mb(p.bytes()),
        mb(p.freed_bytes()),
        p.held()
    );
    Ok(p)
}

async fn run_purge(
    settings: &Settings,
    pool: &sqlx::PgPool,
    actor: &Actor,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    if !yes {
        show_preview(pool).await?;
        bail!("Refusing to purge without --yes (the lines above are what would be deleted)");
    }
    let plan = Plan::current(pool, &Grants::All).await?;
    let stop = CancellationToken::new();
    let ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the current batch…");
            ctrl_c.cancel();
        }
    });
    let started = std::time::Instant::now();
    let report = purge::purge(
        pool,
        actor,
        &plan,
        None,
        settings.retention.batch_size,
        &stop,
    )
    .await?;
    let names: std::collections::HashMap<i64, String> = accounts::list(pool)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    for ((policy, account), (n, bytes)) in &report.per_policy_account {
        println!(
            "{}\t{}\tpurged {n} messages, {}",
            plan.policy_name(*policy),
            names
                .get(account)
                .cloned()
                .unwrap_or_else(|| format!("account {account}")),
            mb(*bytes)
        );
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "purged {} messages ({}) in {} batches, {:.1} s ({:.0} messages/s); freed {} in {} blobs{}",
        report.messages,
        mb(report.bytes),
        report.batches,
        secs,
        report.messages as f64 / secs,
        mb(report.collected.bytes),
        report.collected.blobs,
        if report.interrupted {
            "; interrupted — run again to finish"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
