use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use daygle::App;
use daygle::config::Settings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080. Overrides server.bind.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

impl ServeArgs {
    pub fn overrides(&self) -> Vec<(&'static str, String)> {
        self.bind
            .iter()
            .map(|b| ("server.bind", b.clone()))
            .collect()
    }
}

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let app = App::build(settings).await.context("Failed to start")?;
    let url = app.url();
    tracing::info!(%url, "daygle is ready");
    println!("Daygle Mail Archiver is running at {url}  (Ctrl-C to stop)");
    tokio::spawn(stop_on_signal(app.shutdown_token()));
    app.run_until_stopped()
        .await
        .context("Server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

/// First SIGINT/SIGTERM: graceful stop. A second one: exit now (the private cluster, if any,
/// is adopted and stopped by the next start).
async fn stop_on_signal(token: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        tracing::error!("cannot listen for SIGTERM");
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight (signal again to force)");
    token.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::warn!("forced exit");
    std::process::exit(130);
}
