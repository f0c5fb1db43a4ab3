//! `daygle reindex`: rebuild search vectors from the stored originals, a batch at a time, with
//! progress. Resumable: a stopped run leaves the rest flagged, and `--resume` (or `serve`'s
//! background task) continues there. Without it every message in scope is rebuilt: flagged
//! rows are also new mail waiting for its attachment text, so they cannot tell a stopped run
//! from a repair that has not started.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use daygle::archive::search::Language;
use daygle::archive::search::reindex::{self, Scope};
use daygle::audit::{Action, Actor, AuditEvent, Target, record_now};
use daygle::config::Settings;

use super::context::{CliContext, Schema, with_database};

/// `daygle reindex`: which account, and its search language.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Only this archive account (by name).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Set the account's stemming language first (needs --account), e.g. german; `simple`
    /// indexes exact word forms only.
    #[arg(long, value_name = "LANGUAGE", requires = "account")]
    pub language: Option<String>,
    /// Only the messages still flagged: continue a stopped run instead of rebuilding every
    /// message.
    #[arg(long)]
    pub resume: bool,
}

/// Rebuilds the search vectors of the chosen mail, resuming a stopped run.
pub async fn run(settings: Settings, args: ReindexArgs) -> anyhow::Result<ExitCode> {
    super::context::require_archive(&settings)?;
    let language = args
        .language
        .as_deref()
        .map(|name| {
            Language::parse(name).with_context(|| {
                let names: Vec<&str> = Language::ALL.iter().map(|l| l.as_str()).collect();
                format!("--language {name:?} is not one of: {}", names.join(", "))
            })
        })
        .transpose()?;
    with_database(settings, Schema::AsIs, async |ctx| {
        reindex_with(ctx, &args, language).await
    })
    .await
}

async fn reindex_with(
    ctx: &CliContext,
    args: &ReindexArgs,
    language: Option<Language>,
) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let account_id = match &args.account {
        Some(name) => Some(ctx.account(name).await?.id),
        None => None,
    };
    let scope = Scope { account_id };
    let actor = Actor::cli();
    if let (Some(language), Some(id)) = (language, account_id) {
        reindex::set_language(pool, &actor, id, language).await?;
        println!("search language set to {}", language.as_str());
    }
    let total = if args.resume {
        let total = reindex::pending(pool, scope).await?;
        println!("continuing: {total} messages still to rebuild");
        total
    } else {
        reindex::schedule(pool, scope).await?;
        reindex::pending(pool, scope).await?
    };
    let event = AuditEvent::by(&actor, Action::SearchReindex)
        .target(account_id.map_or(Target::Archive, Target::Account))
        .details(serde_json::json!({ "messages": total }));
    record_now(pool, &event).await?;
    // A bar for people at a terminal; scripts and CI logs get only the summary.
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let done = reindex::run(pool, scope, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    println!("rebuilt the search vectors of {done} messages");
    Ok(ExitCode::SUCCESS)
}
