//! `daygle account add|list|remove|enable|disable|test`: manage archive accounts.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use daygle::archive::ledger;
use daygle::audit::Actor;
use daygle::config::{Settings, split_list};
use daygle::db;
use daygle::ingest::accounts::{self, TlsMode};
use daygle::ingest::imap::{self, Timeouts};
use daygle::ingest::manage::{self, AccountDraft};
use daygle::ingest::workers::{self, WorkerState};
use daygle::secrets::Keys;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add an IMAP account. The password is read from standard input (prompted on a terminal).
    Add(AddArgs),
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
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub host: String,
    /// Default: 993 for implicit TLS, 143 otherwise.
    #[arg(long)]
    pub port: Option<u16>,
    /// implicit, starttls or none.
    #[arg(long, default_value = "implicit")]
    pub tls: String,
    #[arg(long)]
    pub username: String,
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

pub async fn run(settings: Settings, cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    let database = db::open_for_command(&settings)
        .await
        .context("Failed to open the database")?;
    db::migrate(&database.pool).await?;
    let pool = database.pool.clone();
    let result = match cmd {
        AccountCommand::Add(args) => add(&settings, &pool, args).await,
        AccountCommand::List => list(&pool).await,
        AccountCommand::Remove { name, yes } => remove(&pool, &name, yes).await,
        AccountCommand::Enable { name } => set_enabled(&pool, &name, true).await,
        AccountCommand::Disable { name } => set_enabled(&pool, &name, false).await,
        AccountCommand::Test { name } => test(&settings, &pool, &name).await,
    };
    super::seal_audit(&settings, &pool).await;
    database.close().await?;
    result
}

fn load_keys(settings: &Settings) -> anyhow::Result<Keys> {
    Keys::load(&settings.security, &settings.data_dir()).context("Failed to load the sealing key")
}

async fn add(settings: &Settings, pool: &sqlx::PgPool, args: AddArgs) -> anyhow::Result<ExitCode> {
    let imap = AccountDraft {
        name: args.name,
        host: args.host,
        port: args.port,
        tls: TlsMode::parse(&args.tls)?,
        username: args.username,
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
    let keys = load_keys(settings)?;
    let id = manage::create_account(pool, &keys.sealing, &Actor::cli(), &imap, &password).await?;
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
    for a in all {
        let folders = ledger::coverage(pool, a.id).await?;
        let archived: i64 = folders.iter().map(|f| f.archived).sum();
        let skipped: i64 = folders.iter().map(|f| f.skipped).sum();
        let failed: i64 = folders.iter().map(|f| f.failed).sum();
        let server: Option<i64> = folders.iter().map(|f| f.server_messages).sum();
        let mut conn = pool.acquire().await?;
        let total = daygle::archive::messages::count_for_account(&mut conn, a.id).await?;
        let coverage = match server {
            Some(0) => "100%".to_string(),
            Some(s) if !folders.is_empty() => {
                format!(
                    "{:.1}%",
                    (((archived + skipped) as f64 / s as f64) * 100.0).min(100.0)
                )
            }
            _ => "-".to_string(),
        };
        let status = match workers::get(pool, &workers::sync_worker_name(a.id)).await? {
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
            None if a.kind == "imap" => "never synced".into(),
            None => "-".into(),
        };
        let server_text = match (&a.host, a.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
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

async fn find(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<accounts::Account> {
    let mut conn = pool.acquire().await?;
    accounts::find_by_name(&mut conn, name)
        .await?
        .with_context(|| format!("no account named {name}; see `daygle account list`"))
}

async fn remove(pool: &sqlx::PgPool, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let account = find(pool, name).await?;
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

async fn set_enabled(pool: &sqlx::PgPool, name: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let account = find(pool, name).await?;
    manage::set_enabled(pool, &Actor::cli(), account.id, enabled).await?;
    println!(
        "account {} {}",
        account.name,
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn test(settings: &Settings, pool: &sqlx::PgPool, name: &str) -> anyhow::Result<ExitCode> {
    let keys = load_keys(settings)?;
    daygle::reseal::upgrade_stored(pool, &keys.sealing).await?;
    let account = find(pool, name).await?;
    let password = account.password(&keys.sealing)?;
    match imap::test_connection(&account, &password, Timeouts::from_settings(&settings.sync)).await
    {
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
