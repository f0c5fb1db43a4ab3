//! `daygle account add|list|remove|enable|disable|test|options`: manage archive accounts.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use daygle::archive::{ledger, messages};
use daygle::audit::Actor;
use daygle::config::{Settings, split_list};
use daygle::ingest::accounts::{self, TlsMode};
use daygle::ingest::imap::Timeouts;
use daygle::ingest::manage::{self, AccountDraft};
use daygle::ingest::workers::{self, WorkerState, WorkerStatus};

use super::context::{CliContext, Schema, require_archive, with_database};

/// `daygle account …`: the subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an account. IMAP: the password is read from standard input (prompted on a terminal).
    /// Gmail / Microsoft 365 (`--kind gmail|graph`): app-only access with the `[google]` /
    /// `[microsoft]` credentials, one account per `--mailbox` (or per line of
    /// `--mailboxes-file`).
    Add(Box<AddArgs>),
    /// List accounts with their sync status and coverage.
    List,
    /// Remove an account and its archived mail (asks for --yes).
    Remove {
        name: String,
        /// Really delete the account and its archived messages.
        #[arg(long)]
        yes: bool,
    },
    /// Resume syncing an account.
    Enable { name: String },
    /// Stop syncing an account (its archive stays).
    Disable { name: String },
    /// Log in and list the folders with their message counts.
    Test { name: String },
    /// How an IMAP account follows its server between polls: IDLE on INBOX, flag changes.
    Options(OptionsArgs),
}

/// `daygle account options`: what is not given stays as it is.
#[derive(Debug, Args)]
pub struct OptionsArgs {
    pub name: String,
    /// Watch INBOX with IDLE: on, off, or default (`sync.idle`).
    #[arg(long, value_parser = ["on", "off", "default"])]
    pub idle: Option<String>,
    /// Copy flag changes made on the server (read, answered, flagged) to archived copies.
    #[arg(long, value_parser = ["on", "off"])]
    pub follow_flags: Option<String>,
}

/// `daygle account add`: the account to archive.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// imap, gmail (Gmail API, service account with domain-wide delegation) or graph
    /// (Microsoft Graph, client credentials).
    #[arg(long, default_value = "imap")]
    pub kind: String,
    /// The account's name. Gmail / Microsoft 365 with several mailboxes: each account is named
    /// by its mailbox address.
    #[arg(long)]
    pub name: Option<String>,
    /// Gmail / Microsoft 365: the mailbox address to archive (repeat for more).
    #[arg(long)]
    pub mailbox: Vec<String>,
    /// Gmail / Microsoft 365: a file with one mailbox address per line (`#` comments).
    #[arg(long, value_name = "PATH")]
    pub mailboxes_file: Option<std::path::PathBuf>,
    #[arg(long, required_if_eq("kind", "imap"))]
    pub host: Option<String>,
    /// Default: 993 for implicit TLS, 143 otherwise.
    #[arg(long)]
    pub port: Option<u16>,
    /// implicit, starttls or none.
    #[arg(long, default_value = "implicit")]
    pub tls: String,
    #[arg(long, required_if_eq("kind", "imap"))]
    pub username: Option<String>,
    /// Folders to archive, comma-separated patterns (`*` = any characters). Default: all.
    #[arg(long)]
    pub folders: Option<String>,
    /// Folders to leave out. Default: sync.exclude_folders.
    #[arg(long)]
    pub exclude_folders: Option<String>,
    /// Delete mail from the server once archived, verified and this many days old.
    #[arg(long)]
    pub delete_after_days: Option<i32>,
    /// After flagging \Deleted, leave the messages for the mail client to expunge.
    #[arg(long)]
    pub no_expunge: bool,
    /// Poll interval in seconds. Default: sync.default_poll_secs.
    #[arg(long)]
    pub poll_secs: Option<i32>,
    /// Trust this self-signed server certificate (its SHA-256, 64 hex digits).
    #[arg(long, value_name = "SHA256")]
    pub pin_cert: Option<String>,
}

/// Runs a `daygle account` subcommand against the migrated database.
pub async fn run(settings: Settings, cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    if !matches!(cmd, AccountCommand::Add(_)) {
        require_archive(&settings)?;
    }
    with_database(settings, Schema::Migrate, async |ctx| {
        let result = match cmd {
            AccountCommand::Add(args) => add(ctx, *args).await,
            AccountCommand::List => list(ctx.pool()).await,
            AccountCommand::Remove { name, yes } => remove(ctx, &name, yes).await,
            AccountCommand::Enable { name } => set_enabled(ctx, &name, true).await,
            AccountCommand::Disable { name } => set_enabled(ctx, &name, false).await,
            AccountCommand::Test { name } => test(ctx, &name).await,
            AccountCommand::Options(args) => options(ctx, args).await,
        };
        super::seal_audit(&ctx.settings, ctx.pool()).await;
        result
    })
    .await
}

async fn add(ctx: &CliContext, args: AddArgs) -> anyhow::Result<ExitCode> {
    if args.kind != "imap" {
        return add_app_only(ctx, args).await;
    }
    let settings = &ctx.settings;
    let imap = AccountDraft {
        name: args.name.context("--name is required")?,
        host: args.host.unwrap_or_default(),
        port: args.port,
        tls: TlsMode::parse(&args.tls)?,
        username: args.username.unwrap_or_default(),
        folders_include: args.folders.as_deref().map(split_list).unwrap_or_default(),
        folders_exclude: args.exclude_folders.as_deref().map(split_list),
        poll_interval_secs: args.poll_secs,
        delete_after_days: args.delete_after_days,
        expunge: !args.no_expunge,
        pinned_cert_sha256: args.pin_cert,
    }
    .settings(&settings.sync);
    // Checked before the password prompt, so a typo costs no typing.
    imap.validate()?;
    let password = read_password(&format!("IMAP password for {}: ", imap.username))?;
    let keys = ctx.keys().await?;
    let id = manage::create_account(
        ctx.pool(),
        &keys.sealing,
        &Actor::cli(),
        &imap,
        &password,
        None,
    )
    .await?;
    println!(
        "added account {} (id {id}): {}:{} ({}), user {}",
        imap.name,
        imap.host,
        imap.port,
        imap.tls.as_str(),
        imap.username
    );
    Ok(ExitCode::SUCCESS)
}

/// Gmail / Microsoft 365 mailboxes with the instance's own credentials: checks the
/// credentials can get a token for the first mailbox, then adds one account per mailbox.
async fn add_app_only(ctx: &CliContext, args: AddArgs) -> anyhow::Result<ExitCode> {
    let kind = args.kind.as_str();
    anyhow::ensure!(
        matches!(kind, "gmail" | "graph"),
        "--kind must be imap, gmail or graph"
    );
    let mut mailboxes: Vec<String> = args.mailbox.clone();
    if let Some(path) = &args.mailboxes_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the mailbox list {}", path.display()))?;
        mailboxes.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    anyhow::ensure!(
        !mailboxes.is_empty(),
        "name the mailbox to archive with --mailbox ADDRESS (or --mailboxes-file PATH)"
    );
    anyhow::ensure!(
        mailboxes.len() == 1 || args.name.is_none(),
        "--name names one account; with several mailboxes each account is named by its address"
    );
    let poll = args
        .poll_secs
        .unwrap_or(i32::try_from(ctx.settings.sync.default_poll_secs).unwrap_or(300));
    let drafts: Vec<accounts::OAuthSettings> = mailboxes
        .iter()
        .map(|m| accounts::OAuthSettings {
            name: args.name.clone().unwrap_or_else(|| m.trim().to_string()),
            kind: kind.to_string(),
            mailbox: Some(m.clone()),
            app_only: true,
            poll_interval_secs: poll,
        })
        .collect();
    for d in &drafts {
        d.validate()?;
    }
    // Fail before adding anything when the credentials cannot work.
    daygle::ingest::oauth::check_app_credentials(&ctx.settings, kind, drafts[0].mailbox.as_deref())
        .await?;
    let mut failed = false;
    for d in drafts {
        match manage::create_oauth_account(ctx.pool(), &Actor::cli(), &d).await {
            Ok(id) => println!(
                "added account {} (id {id}): {} mailbox {}",
                d.name,
                if kind == "gmail" {
                    "Gmail"
                } else {
                    "Microsoft 365"
                },
                d.mailbox.as_deref().unwrap_or_default()
            ),
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", d.name);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// From standard input: prompted without echo on a terminal, else the first line.
fn read_password(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.context("Failed to read the password from standard input")?;
    let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if password.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(password)
}

async fn list(pool: &sqlx::PgPool) -> anyhow::Result<ExitCode> {
    let all = accounts::list(pool).await?;
    if all.is_empty() {
        println!("no accounts yet: add one with `daygle account add`");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<7} {:<8} {:<28} {:>9} {:>9} {:>8}  STATUS",
        "NAME", "KIND", "ENABLED", "SERVER", "ARCHIVED", "COVERAGE", "SKIPPED"
    );
    // A fixed number of queries, however many accounts there are.
    let mut coverage = ledger::coverage_by_account(pool).await?;
    let totals = messages::count_by_account(pool).await?;
    let mut sync_workers: HashMap<String, WorkerStatus> =
        workers::list(pool, &daygle::auth::Grants::All)
            .await?
            .into_iter()
            .map(|w| (w.name.clone(), w))
            .collect();
    for a in all {
        let folders = coverage.remove(&a.id).unwrap_or_default();
        let skipped: i64 = folders.iter().map(|f| f.skipped).sum();
        let failed: i64 = folders.iter().map(|f| f.failed).sum();
        let total = totals.get(&a.id).copied().unwrap_or(0);
        let coverage = match daygle::archive::ledger::account_percent(&folders) {
            Some(p) => format!("{p:.1}%"),
            None => "-".to_string(),
        };
        let status = match sync_workers.remove(&workers::sync_worker_name(a.id)) {
            Some(w) if w.last_error.is_some() => format!(
                "error: {}",
                w.last_error
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
            Some(w) if w.state == WorkerState::Running => {
                format!("running: {}", w.activity.unwrap_or_default())
            }
            Some(w) => match w.last_success_at {
                Some(t) => format!("ok, last sync {}", t.date()),
                None => w.state.to_string(),
            },
            None if a.oauth_state == "reconnect" => "reconnect this account".into(),
            None if a.kind != "import" => "never synced".into(),
            None => "-".into(),
        };
        let server_text = match (&a.host, a.port, &a.mailbox) {
            (Some(h), Some(p), _) => format!("{h}:{p}"),
            (_, _, Some(m)) => m.clone(),
            _ => "-".into(),
        };
        let failed_text = if failed > 0 {
            format!(" ({failed} failed, retried next run)")
        } else {
            String::new()
        };
        println!(
            "{:<20} {:<7} {:<8} {:<28} {:>9} {:>9} {:>8}  {status}{failed_text}",
            a.name,
            a.kind,
            if a.enabled { "yes" } else { "no" },
            server_text,
            total,
            coverage,
            skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(ctx: &CliContext, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let account = ctx.account(name).await?;
    let mut conn = pool.acquire().await?;
    let impact = accounts::removal_impact(&mut conn, account.id).await?;
    drop(conn);
    if !yes {
        println!(
            "removing account {} deletes its {} archived messages ({} stored contents no other account shares; the rest stay with the accounts that also hold them).",
            account.name, impact.messages, impact.unshared_blobs
        );
        println!(
            "nothing was changed: run again with --yes to remove it, or `daygle account disable {}` to stop syncing and keep the archive",
            account.name
        );
        return Ok(ExitCode::from(1));
    }
    let done = manage::remove_account(pool, &Actor::cli(), account.id).await?;
    println!(
        "removed account {}: {} archived messages deleted, {} stored contents freed",
        account.name, done.messages, done.unshared_blobs
    );
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(ctx: &CliContext, name: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let account = ctx.account(name).await?;
    manage::set_enabled(ctx.pool(), &Actor::cli(), account.id, enabled).await?;
    println!(
        "account {} {}",
        account.name,
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn options(ctx: &CliContext, args: OptionsArgs) -> anyhow::Result<ExitCode> {
    let account = ctx.account(&args.name).await?;
    if account.kind != "imap" {
        bail!("account {} is not an IMAP account", account.name);
    }
    let mut o = accounts::ImapOptions {
        idle: account.idle,
        follow_flags: account.follow_flags,
    };
    match args.idle.as_deref() {
        Some("on") => o.idle = Some(true),
        Some("off") => o.idle = Some(false),
        Some(_) => o.idle = None,
        None => {}
    }
    if let Some(f) = args.follow_flags.as_deref() {
        o.follow_flags = f == "on";
    }
    manage::set_options(ctx.pool(), &Actor::cli(), account.id, o).await?;
    let idle = match o.idle {
        Some(true) => "on".to_string(),
        Some(false) => "off".to_string(),
        None => format!(
            "default ({})",
            if ctx.settings.sync.idle { "on" } else { "off" }
        ),
    };
    let flags = if o.follow_flags { "on" } else { "off" };
    println!(
        "account {}: idle {idle}, follow flags {flags}",
        account.name
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(ctx: &CliContext, name: &str) -> anyhow::Result<ExitCode> {
    let settings = &ctx.settings;
    let keys = ctx.keys().await?;
    daygle::reseal::upgrade_stored(ctx.pool(), &keys.sealing).await?;
    let account = ctx.account(name).await?;
    // A missing password stops the command like any other error, before a connection is tried.
    account.password(&keys.sealing)?;
    let timeouts = Timeouts::from_settings(&settings.sync);
    match manage::test_account(ctx.pool(), &keys.sealing, account.id, timeouts).await {
        Ok(report) => {
            println!("connected and logged in to {}", account.name);
            for (folder, count, included) in report.folders {
                let mark = if included { "archived" } else { "left out" };
                println!("  {folder:<40} {count:>8} messages  ({mark})");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("connection test failed: {}", daygle::error::chain(&e));
            Ok(ExitCode::from(1))
        }
    }
}
