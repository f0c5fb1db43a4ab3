//! `daygle verify audit|archive`: integrity checks an operator (or an auditor) runs.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use daygle::audit::chain;
use daygle::audit::seal::Checkpoint;
use daygle::config::Settings;
use daygle::secrets::Keys;
use daygle::verify::runs::{self, Trigger};
use daygle::verify::{Observer, Problem, Scope};

use super::context::{CliContext, Schema, load_keys, with_database};

/// `daygle verify …`: the integrity checks.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Check that no audit row was changed, removed or reordered. Exit 1 at the first broken
    /// link. Prints the newest seal (`<entry>:<mac>`): keep it elsewhere as a checkpoint.
    Audit {
        /// A checkpoint printed by an earlier run: fail unless the log still holds it.
        #[arg(long, value_name = "ENTRY:MAC")]
        since_checkpoint: Option<String>,
    },
    /// Re-read every stored message: decompress and re-hash each blob, check every message row,
    /// its attachments, the quarantine and the completeness ledger. Exit 1 listing every problem.
    Archive(ArchiveArgs),
    /// Re-hash every message of a zip or mbox export against the manifest it carries (no
    /// database needed). Exit 1 listing altered, missing and added messages.
    Export {
        /// The exported .zip or .mbox file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
}

/// `daygle verify archive`: which account, and how much of it.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Check only this share of the stored messages (0 < PERCENT ≤ 100), chosen at random;
    /// the row, ledger and quarantine checks still cover everything.
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<f64>,
    /// Only this archive account (by name).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
}

/// Runs the chosen check; exit 1 when it finds a problem.
pub async fn run(settings: Settings, command: VerifyCommand) -> anyhow::Result<ExitCode> {
    if !matches!(command, VerifyCommand::Export { .. }) {
        super::context::require_archive(&settings)?;
    }
    match command {
        VerifyCommand::Audit { since_checkpoint } => audit(settings, since_checkpoint).await,
        VerifyCommand::Archive(args) => archive(settings, args).await,
        VerifyCommand::Export { file } => export(&file),
    }
}

fn export(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let report = daygle::verify::export::verify_export(file)
        .with_context(|| format!("Failed to check {}", file.display()))?;
    for problem in &report.problems {
        println!("{problem}");
    }
    if let Some(info) = &report.info {
        println!(
            "export of {} messages by {} at {} (format {}, query {:?}, audit entry {}); manifest.csv SHA-256 {}",
            info.count,
            info.exported_by,
            info.exported_at,
            info.format,
            info.query,
            info.audit_seq.map_or("-".into(), |s| s.to_string()),
            info.manifest_sha256,
        );
    }
    if report.problems.is_empty() {
        println!("all {} messages match the manifest", report.checked);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "the export does NOT match its manifest: {} problem(s), listed above",
            report.problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn audit(settings: Settings, since_checkpoint: Option<String>) -> anyhow::Result<ExitCode> {
    let checkpoint = match since_checkpoint.as_deref().map(Checkpoint::parse) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => bail!(
            "--since-checkpoint takes ENTRY:MAC as printed by an earlier `daygle verify audit`"
        ),
    };
    let key = Keys::load_audit_key(&settings.security, &settings.data_dir()).context(
        "Failed to load the audit key (security.audit_key_file or <data_dir>/secrets/audit_key)",
    )?;
    let v = with_database(settings, Schema::AsIs, async |ctx| {
        chain::verify(ctx.pool(), &key, checkpoint.as_ref())
            .await
            .context("Failed to read the audit log")
    })
    .await?;
    match v.broken {
        None => {
            println!("audit log intact: {} entries, chain verified", v.rows);
            match &v.sealed {
                Some(head) => println!("head seal (keep as a checkpoint): {head}"),
                None => {
                    println!("no seal yet: the log is not yet proven against the database owner")
                }
            }
            if v.unsealed > 0 {
                println!(
                    "{} newer entries are not sealed yet (the server seals every few seconds)",
                    v.unsealed
                );
            }
            if let Some(c) = &checkpoint {
                println!("checkpoint {} still holds", c.seq);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(link) => {
            println!("audit log BROKEN at entry {}: {}", link.id, link.reason);
            println!(
                "entries before {} verified; do not trust entry {} or any after it",
                link.id, link.id
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn archive(settings: Settings, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = args.sample
        && !(p > 0.0 && p <= 100.0)
    {
        bail!("--sample must be a percentage above 0 and at most 100");
    }
    // The sealing key opens the quarantine.
    let keys = load_keys(&settings).await?;
    with_database(settings, Schema::AsIs, async |ctx| {
        archive_with(ctx, &keys, &args).await
    })
    .await
}

async fn archive_with(
    ctx: &CliContext,
    keys: &Keys,
    args: &ArchiveArgs,
) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let account_id = match &args.account {
        Some(name) => Some(ctx.account(name).await?.id),
        None => None,
    };
    let scope = Scope {
        account_id,
        sample_percent: args.sample,
    };
    let observer = Terminal::new();
    let started = Instant::now();
    let done = runs::run_recorded(pool, Some(&keys.sealing), &scope, Trigger::Cli, &observer)
        .await
        .context("Verification stopped")?;
    observer.bar.finish_and_clear();
    let (_, summary) = done.context("a command-line run is never refused")?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let what = match args.sample {
        Some(p) if p < 100.0 => format!("a {p}% sample: "),
        _ => String::new(),
    };
    println!(
        "checked {what}{} messages, {} blobs ({:.1} MB) and {} quarantined messages in {secs:.1} s ({:.0} MB/s)",
        summary.messages_checked,
        summary.blobs_checked,
        summary.bytes_checked as f64 / 1e6,
        summary.quarantine_checked,
        summary.bytes_checked as f64 / 1e6 / secs,
    );
    if summary.is_clean() {
        println!("archive intact: no problems found");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "archive has {} problem(s), listed above",
            summary.problem_count
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Progress on stderr when it is a terminal; problems on stdout as they are found.
struct Terminal {
    bar: ProgressBar,
}

impl Terminal {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }
}

impl Observer for Terminal {
    fn planned(&self, _blobs: u64, bytes: u64) {
        self.bar.set_length(bytes);
    }
    fn advanced(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn problem(&self, problem: &Problem) {
        self.bar.suspend(|| println!("{problem}"));
    }
}
