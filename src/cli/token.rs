//! `daygle token create|list|revoke`: API tokens from the command line (scripts, break-glass).
//! `create` prints the new token once, on stdout, and nothing else there.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use daygle::audit::Actor;
use daygle::auth::tokens::{self, NewToken, Scope};
use daygle::config::Settings;

use super::context::{Schema, require_archive, with_database};

/// `daygle token …`: the subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for USERNAME and print it (shown only this once).
    Create(CreateArgs),
    /// List tokens (all, or one user's), never their secrets.
    List(ListArgs),
    /// Revoke a token by its id (from `list`).
    Revoke(RevokeArgs),
}

/// `daygle token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Whose token: it never reaches more than this user holds.
    pub username: String,
    /// A name to tell the token apart, e.g. "nightly export".
    #[arg(long)]
    pub name: String,
    /// Comma-separated: mail:read, mail:export, admin.
    #[arg(long)]
    pub scope: String,
    /// Expire after this many days (default: never).
    #[arg(long)]
    pub expires_days: Option<i64>,
    /// Restrict to these archive account ids, comma-separated (default: all the user may read).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Vec<i64>,
}

/// `daygle token list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this user's tokens.
    #[arg(long)]
    pub user: Option<String>,
}

/// `daygle token revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    pub id: i64,
}

/// Runs a `daygle token` subcommand against the migrated database.
pub async fn run(settings: Settings, command: TokenCommand) -> anyhow::Result<ExitCode> {
    require_archive(&settings)?;
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let actor = Actor::cli();
        let result: anyhow::Result<()> = async {
            match command {
                TokenCommand::Create(args) => {
                    let user = ctx.user(&args.username).await?;
                    let scopes = Scope::parse_list(&args.scope)?;
                    let new = NewToken {
                        name: args.name,
                        scopes,
                        account_ids: (!args.accounts.is_empty()).then_some(args.accounts),
                        expires_in_days: args.expires_days,
                    };
                    let (token, secret) = tokens::create(pool, &actor, user.id, new)
                        .await
                        .context("Failed to create the token")?;
                    eprintln!(
                        "token {} ({}) for {} with {}; it is shown only now:",
                        token.id,
                        token.name,
                        user.username,
                        token.scope_names()
                    );
                    println!("{secret}");
                }
                TokenCommand::List(args) => {
                    let owner = match &args.user {
                        Some(name) => Some(ctx.user(name).await?.id),
                        None => None,
                    };
                    let now = time::OffsetDateTime::now_utc();
                    println!("id\tuser\tname\tprefix\tscopes\tstatus\texpires\tlast used");
                    for t in tokens::list(pool, owner).await? {
                        let status = match (t.revoked_at, t.is_active(now)) {
                            (Some(_), _) => "revoked",
                            (None, false) => "expired",
                            (None, true) => "active",
                        };
                        let when = |t: Option<time::OffsetDateTime>| {
                            t.map(|t| t.to_string()).unwrap_or_else(|| "never".into())
                        };
                        println!(
                            "{}\t{}\t{}\t{}…\t{}\t{status}\t{}\t{}",
                            t.id,
                            t.username,
                            t.name,
                            t.prefix,
                            t.scope_names(),
                            when(t.expires_at),
                            when(t.last_used_at),
                        );
                    }
                }
                TokenCommand::Revoke(args) => {
                    tokens::revoke(pool, &actor, args.id, None)
                        .await
                        .context("Failed to revoke the token")?;
                    println!("token {} revoked", args.id);
                }
            }
            Ok(())
        }
        .await;
        super::seal_audit(&ctx.settings, pool).await;
        result?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}
