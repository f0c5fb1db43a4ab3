use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use daygle::App;
use daygle::config::Settings;

/// `daygle serve`: overrides of the configured server settings.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080. Overrides server.bind.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// What this process does when several share one database: `web` (the UI and API),
    /// `worker` (syncing and the once-per-installation jobs) or `all`. Overrides server.role.
    #[arg(long, value_name = "ROLE", value_parser = ["web", "worker", "all"])]
    pub role: Option<String>,
}

impl ServeArgs {
    /// The command-line values as config overrides (`section.key`, value).
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        let bind = self.bind.iter().map(|b| ("server.bind", b.clone()));
        let role = self.role.iter().map(|r| ("server.role", r.clone()));
        bind.chain(role).collect()
    }
}

/// Serves until the first SIGINT/SIGTERM, then stops gracefully.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let data_dir = settings.data_dir();
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    tracing::info!(data_dir = %data_dir.display(), "starting");
    println!("Data directory: {}", data_dir.display());
    let app = App::build(settings).await.context("Failed to start")?;
    // Listen for signals before announcing the URL, so an early signal is never fatal.
    let signals = Signals::listen().context("Failed to install signal handlers")?;
    tokio::spawn(signals.stop_on_signal(app.shutdown_token()));
    let url = app.url();
    tracing::info!(%url, "daygle is ready");
    println!("Daygle Mail Archiver is running at {url}  (Ctrl-C to stop)");
    app.run_until_stopped()
        .await
        .context("Server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }

    /// First SIGINT/SIGTERM: graceful stop. A second one: exit now (the private cluster, if
    /// any, is adopted and stopped by the next start).
    async fn stop_on_signal(mut self, token: CancellationToken) {
        self.next().await;
        tracing::info!("shutting down: finishing requests in flight (signal again to force)");
        token.cancel();
        self.next().await;
        tracing::warn!("forced exit");
        // Deliberate: the operator asked twice. The next start adopts the cluster.
        #[allow(clippy::disallowed_methods)]
        std::process::exit(130);
    }
}
