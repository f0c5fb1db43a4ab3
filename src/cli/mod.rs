//! Command-line interface: one file per subcommand. `anyhow` lives here and in `main` only.

mod account;
mod backup;
mod bench;
mod check_config;
mod context;
mod delete;
mod export;
mod healthcheck;
mod hold;
mod import;
mod keygen;
mod migrate;
mod reindex;
mod rescan;
mod retention;
mod rotate_key;
mod serve;
mod sync;
mod token;
mod user;
mod verify;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use daygle::config::{self, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "daygle",
    version,
    about = "Daygle Mail Archiver: archive, scan and search your mail"
)]
/// The `daygle` command line.
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (INI). Default: ./daygle_mail_archiver.conf when it exists.
    #[arg(long, global = true, env = "DAYGLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (keys, private PostgreSQL cluster). Overrides storage.data_dir.
    #[arg(long, global = true, env = "DAYGLE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format: human or json. Overrides logging.format.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web UI and the background workers until SIGTERM or Ctrl-C.
    Serve(serve::ServeArgs),
    /// Apply database migrations, then exit.
    Migrate,
    /// Print a new random key for security.sealing_key or security.session_key.
    Keygen,
    /// Validate the configuration and print the effective settings with secrets masked.
    CheckConfig,
    /// Manage archive accounts (IMAP mailboxes and import sets).
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Sync IMAP accounts now, without the web server.
    Sync(sync::SyncArgs),
    /// Import mbox files, Maildir trees or .eml files into an import account.
    Import(import::ImportArgs),
    /// Export archived mail (everything, one account, or a search) as mbox or zip.
    Export(export::ExportArgs),
    /// Re-seal every stored secret (IMAP passwords) under a new sealing key.
    RotateKey(rotate_key::RotateKeyArgs),
    /// Show the background sync workers: activity, last run and success, last error.
    Workers,
    /// Manage users from the command line (e.g. when locked out of the web UI).
    #[command(subcommand)]
    User(user::UserCommand),
    /// API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Write a consistent backup of the whole archive while `serve` keeps running.
    ///
    /// The database and a manifest, the keys with --include-keys, encrypted with
    /// --encrypt-key-file.
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory or an empty database.
    Restore(backup::RestoreArgs),
    /// Integrity checks.
    #[command(subcommand)]
    Verify(verify::VerifyCommand),
    /// Exit 0 when the local server is ready (container health checks).
    ///
    /// Asks /readyz on server.bind: ready means the database is reachable and migrated.
    /// --live asks /healthz only.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Measure throughput, e.g. `daygle bench scan` for clamd.
    Bench(bench::BenchArgs),
    /// Scan archived mail again and apply clamav.action to anything newly detected.
    Rescan(rescan::RescanArgs),
    /// Retention policies: add, list, remove, preview, run.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Legal holds: add, list, release.
    #[command(subcommand)]
    Hold(hold::HoldCommand),
    /// Delete the results of a search (asks for --yes; held mail stays).
    Delete(delete::DeleteArgs),
    /// Subject access and erasure: export and erase all mail from/to/cc/bcc these addresses.
    Erase(delete::EraseArgs),
    /// Rebuild search vectors from the stored originals (all mail, or one account's).
    Reindex(reindex::ReindexArgs),
}

/// Runs the parsed command line; the exit code is the process's.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen => keygen::run(),
        Command::CheckConfig => check_config::run(&cli.global),
        Command::Serve(args) => {
            let settings = load_settings(&cli.global, &args.overrides())?;
            runtime()?.block_on(serve::run(settings))
        }
        Command::User(command) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(user::run(settings, command))
        }
        Command::Token(command) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(token::run(settings, command))
        }
        Command::Backup(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(backup::backup(settings, args))
        }
        Command::Restore(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(backup::restore(settings, args))
        }
        Command::Verify(command) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(verify::run(settings, command))
        }
        Command::Healthcheck(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(healthcheck::run(settings, args))
        }
        Command::Rescan(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(rescan::run(settings, args))
        }
        Command::Reindex(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(reindex::run(settings, args))
        }
        Command::Bench(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(bench::run(settings, args))
        }
        Command::Migrate => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(migrate::run(settings))
        }
        Command::Account(cmd) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(account::run(settings, cmd))
        }
        Command::Sync(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(sync::run(settings, args))
        }
        Command::Export(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(export::run(settings, args))
        }
        Command::Import(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(import::run(settings, args))
        }
        Command::Workers => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(workers::run(settings))
        }
        Command::Retention(cmd) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(retention::run(settings, cmd))
        }
        Command::Hold(cmd) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(hold::run(settings, cmd))
        }
        Command::Delete(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(delete::delete(settings, args))
        }
        Command::Erase(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(delete::erase(settings, args))
        }
        Command::RotateKey(args) => {
            let settings = load_settings(&cli.global, &[])?;
            runtime()?.block_on(rotate_key::run(settings, args))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")
}

/// Layers the config, applies command-line overrides, validates, and starts logging.
/// Problems are printed one per line and end the process with exit code 2.
pub fn load_settings(global: &GlobalArgs, extra: &[(&str, String)]) -> anyhow::Result<Settings> {
    let mut overrides: Vec<(&str, String)> = extra.to_vec();
    if let Some(dir) = &global.data_dir {
        overrides.push(("storage.data_dir", dir.display().to_string()));
    }
    if let Some(format) = &global.log_format {
        overrides.push(("logging.format", format.clone()));
    }
    match config::load(global.config.as_deref(), &overrides) {
        Ok(settings) => {
            daygle::telemetry::init(&settings.logging.format, &settings.logging.level);
            daygle::archive::blobs::set_min_part_bytes(settings.storage.attachment_min_bytes);
            Ok(settings)
        }
        Err(errors) => {
            for problem in &errors.0 {
                eprintln!("config error: {problem}");
            }
            // Nothing has started yet, so no destructor is skipped.
            #[allow(clippy::disallowed_methods)]
            std::process::exit(2);
        }
    }
}

/// Seals the audit log's head after a command wrote to it, so its entries are proven without
/// waiting for a server (see `daygle::audit::seal`). A failure is reported, not fatal: the
/// next server or command seals them.
pub(crate) async fn seal_audit(settings: &Settings, pool: &sqlx::PgPool) {
    let key = match daygle::secrets::Keys::load(&settings.security, &settings.data_dir()) {
        Ok(keys) => keys.audit,
        Err(e) => {
            eprintln!("warning: audit entries not sealed: {e}");
            return;
        }
    };
    if let Err(e) = daygle::audit::seal::seal_head(pool, &key).await {
        eprintln!("warning: audit entries not sealed: {e}");
    }
}
