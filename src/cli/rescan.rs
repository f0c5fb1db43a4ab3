//! `daygle rescan`: scan archived mail again (e.g. after a signature update) and apply the
//! configured action to anything newly detected.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use time::macros::format_description;

use daygle::config::Settings;
use daygle::scan::rescan::{self, RescanFilter};
use daygle::scan::{ScanStage, Scanner};
use daygle::secrets::Keys;

use super::context::{CliContext, Schema, load_keys, with_database};

/// `daygle rescan`: which archived mail to scan again.
#[derive(Debug, Args)]
pub struct RescanArgs {
    /// Only mail archived on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only this archive account (by name).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Only mail archived unscanned while clamd was down.
    #[arg(long)]
    pub pending: bool,
}

/// Scans the chosen mail again and prints what changed.
pub async fn run(settings: Settings, args: RescanArgs) -> anyhow::Result<ExitCode> {
    super::context::require_archive(&settings)?;
    let Some(scanner) = Scanner::from_settings(&settings.clamav) else {
        bail!("clamav.enabled is false: turn scanning on (and set clamav.address) to re-scan");
    };
    scanner
        .version()
        .await
        .context("clamd must be reachable to re-scan")?;
    let since = args
        .since
        .as_deref()
        .map(|s| {
            time::Date::parse(s, format_description!("[year]-[month]-[day]"))
                .map(|d| d.midnight().assume_utc())
                .with_context(|| format!("--since {s:?} is not a date like 2024-01-31"))
        })
        .transpose()?;
    let keys = load_keys(&settings).await?;
    with_database(settings, Schema::AsIs, async |ctx| {
        rescan_with(ctx, scanner, &keys, since, &args).await
    })
    .await
}

async fn rescan_with(
    ctx: &CliContext,
    scanner: Scanner,
    keys: &Keys,
    since: Option<time::OffsetDateTime>,
    args: &RescanArgs,
) -> anyhow::Result<ExitCode> {
    let pool = ctx.pool();
    let settings = &ctx.settings;
    let account_id = match &args.account {
        Some(name) => Some(ctx.account(name).await?.id),
        None => None,
    };
    let filter = RescanFilter {
        since,
        account_id,
        only_pending: args.pending,
    };
    let total = rescan::count(pool, &filter).await?;
    // A bar for people at a terminal; scripts and CI logs get only the summary.
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let stage = ScanStage::new(scanner, &settings.clamav);
    let report = rescan::run(pool, &stage, &keys.sealing, &filter, |n| {
        bar.set_position(n)
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "re-scanned {} of {total} messages: {} clean, {} too large, {} still infected, {} newly infected ({} quarantined, {} flagged, {} rejected)",
        report.scanned,
        report.clean,
        report.too_large,
        report.still_infected,
        report.newly_infected,
        report.quarantined,
        report.flagged,
        report.rejected
    );
    if let Some(reason) = report.stopped {
        eprintln!("stopped early, nothing after this point was changed: {reason}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
