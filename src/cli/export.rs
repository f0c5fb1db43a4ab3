use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use daygle::archive::export::{self, Format};
use daygle::archive::listing::{Filters, Listing, Sort};
use daygle::archive::search;
use daygle::audit::{Action, Actor, AuditEvent, record_now_returning_id};
use daygle::auth::Grants;
use daygle::config::Settings;

use super::context::{Schema, with_database};

/// `daygle export`: what to export, in which format, to which file.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this archive account. Without it (and without --query): everything archived.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// A search in the archive's search language, e.g. 'from:alice after:2024-01-01'.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// mbox (one file) or zip (.eml files plus manifest.csv with SHA-256 sums).
    #[arg(long, value_parser = ["mbox", "zip"])]
    pub format: String,
    /// File to write; it must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also export mail flagged infected or not scanned yet (live malware, possibly). Without
    /// it such messages are left out and a zip's manifest lists them as withheld.
    #[arg(long)]
    pub include_infected: bool,
}

/// Writes the chosen mail to a new file; a failed export leaves no file behind.
pub async fn run(settings: Settings, args: ExportArgs) -> anyhow::Result<ExitCode> {
    super::context::require_archive(&settings)?;
    let query = search::parse(args.query.as_deref().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("--query: {e}"))?;
    let format = Format::parse(&args.format).context("--format must be mbox or zip")?;
    // The export is written beside its destination under a temporary name and moved into
    // place only when complete: a failed or interrupted export never leaves a partial file
    // under the chosen name (which would block the retry).
    anyhow::ensure!(
        !args.output.exists(),
        "{} exists already (the output file must not exist); choose a new file name",
        args.output.display()
    );
    let parent = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = tempfile::Builder::new()
        .prefix(".daygle-export-")
        .suffix(".partial")
        .tempfile_in(&parent)
        .with_context(|| format!("Failed to create a file in {}", parent.display()))?;
    let file = partial
        .as_file()
        .try_clone()
        .context("Failed to open the export file")?;
    let result = with_database(settings, Schema::AsIs, async |ctx| {
        let pool = ctx.pool();
        let account_id = match &args.account {
            Some(name) => Some(ctx.account(name).await?.id),
            None => None,
        };
        let filters = Filters {
            account_id,
            ..Filters::default()
        };
        // The operator at the console reads every archive, as the database owner could anyway.
        let grants = Grants::All;
        let listing = Listing {
            grants: &grants,
            query: &query,
            filters: &filters,
            sort: Sort::Newest,
        };
        let ids = listing.all_ids(pool, i64::MAX).await?;
        let accounts = daygle::archive::messages::accounts_of(pool, &ids).await?;
        let event = AuditEvent::by(&Actor::cli(), Action::MailExport)
            .accounts(accounts)
            .details(serde_json::json!({
                "query": args.query, "account": args.account, "format": args.format,
                "messages": ids.len(), "output": args.output.display().to_string(),
                "include_infected": args.include_infected,
            }));
        let seq = record_now_returning_id(pool, &event).await?;
        let query_text = [
            args.account.as_deref().map(|a| format!("account:{a}")),
            args.query.clone(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let info = export::ExportInfo::new(
            &Actor::cli().username,
            &query_text,
            format.extension(),
            Some(seq),
        );
        let bar = ProgressBar::new(ids.len() as u64);
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = std::time::Instant::now();
        let progress = bar.clone();
        let held = if args.include_infected {
            export::HeldMail::Include
        } else {
            export::HeldMail::Withhold
        };
        let done = export::export(pool, &grants, held, ids, format, info, file, move |n| {
            progress.set_position(n)
        })
        .await;
        bar.finish_and_clear();
        super::seal_audit(&ctx.settings, pool).await;
        Ok((done?, started))
    })
    .await;
    // On failure `partial` is dropped here, which removes it.
    let (done, started) = result.context("Export failed; nothing was written")?;
    partial
        .persist_noclobber(&args.output)
        .map_err(|e| e.error)
        .with_context(|| format!("Failed to move the export to {}", args.output.display()))?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "exported {} messages ({:.1} MB) to {} in {:.1} s, {:.0} messages/s",
        done.messages,
        done.bytes as f64 / 1e6,
        args.output.display(),
        secs,
        done.messages as f64 / secs
    );
    if done.withheld > 0 {
        println!(
            "left out {} infected or not yet scanned messages (see manifest.csv in a zip; --include-infected exports them)",
            done.withheld
        );
    }
    Ok(ExitCode::SUCCESS)
}
