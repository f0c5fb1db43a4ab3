//! `daygle hold add|list|release`: legal holds from scripts.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use time::Date;

use daygle::audit::Actor;
use daygle::auth::Grants;
use daygle::config::Settings;
use daygle::retention::holds;

use super::context::{Schema, with_database};

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a hold. Mail matching all given conditions (none: all mail) cannot be deleted,
    /// including mail archived later.
    Add(AddArgs),
    /// List holds with how many messages each covers now.
    List,
    /// Release a hold (its mail becomes deletable again).
    Release {
        name: String,
        /// Why the hold ends (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    pub name: String,
    /// Why the mail is held, e.g. the case reference.
    #[arg(long)]
    pub reason: String,
    /// Only this archive account (repeat for several). Default: every account.
    #[arg(long, value_name = "NAME")]
    pub account: Vec<String>,
    /// Only mail matching this search.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// Only mail dated on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub from: Option<Date>,
    /// Only mail dated on or before this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_day)]
    pub to: Option<Date>,
}

pub fn parse_day(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s} is not a date like 2024-01-31"))
}

pub async fn run(settings: Settings, cmd: HoldCommand) -> anyhow::Result<ExitCode> {
    if matches!(cmd, HoldCommand::List) {
        super::context::require_archive(&settings)?;
    }
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let actor = Actor::cli();
        match cmd {
            HoldCommand::Add(args) => {
                let input = holds::HoldInput {
                    name: args.name.clone(),
                    reason: args.reason,
                    account_ids: super::retention::account_ids(ctx, &args.account).await?,
                    query: args.query,
                    date_from: args.from,
                    date_to: args.to,
                };
                let id = holds::place(pool, &actor, &Grants::All, &input).await?;
                let n = holds::count_held_by(&mut *pool.acquire().await?, &Grants::All, id).await?;
                println!("placed hold {} (id {id}): {n} messages held now", args.name);
            }
            HoldCommand::List => {
                let all = holds::list_with_held(pool, &Grants::All).await?;
                if all.is_empty() {
                    println!("no legal holds");
                }
                for (h, held) in all {
                    let state = match &h.released_at {
                        None => format!("{held} messages held"),
                        Some(at) => format!(
                            "released {} by {}",
                            at.date(),
                            h.released_by.clone().unwrap_or_default()
                        ),
                    };
                    println!(
                        "{}\t{state}\t{}\tby {} on {}\treason: {}",
                        h.name,
                        h.scope_text(),
                        h.created_by,
                        h.created_at.date(),
                        h.reason
                    );
                }
            }
            HoldCommand::Release { name, reason } => {
                let id = holds::id_by_name(pool, &name)
                    .await
                    .with_context(|| format!("No legal hold named {name}"))?;
                holds::release(pool, &actor, &Grants::All, id, &reason).await?;
                println!("released hold {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}
