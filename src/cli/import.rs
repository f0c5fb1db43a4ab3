//! `daygle import --account NAME PATH…`: load mbox files, Maildir trees and .eml files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use daygle::config::Settings;
use daygle::ingest::{accounts, files};

use super::context::{Schema, load_keys, with_database};

/// `daygle import`: the import account and the paths to read.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The import account to add the mail to (created when it does not exist).
    #[arg(long)]
    pub account: String,
    /// mbox files, Maildir directories, .eml files or directories holding them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Imports the given paths into the import account, printing a report.
pub async fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    // Quarantined mail is sealed, so the import needs the sealing key like the sync does.
    let keys = load_keys(&settings).await?;
    let started = std::time::Instant::now();
    let (account, report) = with_database(settings, Schema::Migrate, async |ctx| {
        let mut conn = ctx.pool().acquire().await?;
        let account = accounts::import_account(&mut conn, &args.account).await?;
        drop(conn);
        let paths = args.paths.clone();
        let total = tokio::task::spawn_blocking(move || files::total_bytes(&paths)).await?;
        let bar = ProgressBar::new(total);
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        // Quarantine expiry and the like as set on the settings page, as the sync uses them.
        let settings = ctx.live_settings(&keys).await?.get();
        let report = files::import_paths(
            ctx.pool(),
            &settings,
            &keys.sealing,
            &account,
            &args.paths,
            &|done| bar.set_position(done),
        )
        .await;
        bar.finish_and_clear();
        Ok((account, report.context("Import stopped")?))
    })
    .await?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "imported {} messages into {} ({} duplicates already archived, {} skipped, {} failed) in {:.1} s, {:.0} messages/s",
        report.imported,
        account.name,
        report.duplicates,
        report.skipped.len(),
        report.failed.len(),
        secs,
        (report.imported + report.duplicates) as f64 / secs
    );
    for (source, reason) in &report.skipped {
        println!("skipped {source}: {reason}");
    }
    for (source, reason) in &report.failed {
        println!("failed {source}: {reason}");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
