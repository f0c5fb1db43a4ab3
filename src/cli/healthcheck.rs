use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use daygle::config::Settings;

#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// Only ask whether the process serves HTTP (/healthz), not whether it is ready.
    #[arg(long)]
    pub live: bool,
}

/// GET /readyz (or /healthz with --live) on the configured bind address; exit 0 when it
/// answers 200. For container HEALTHCHECKs, where no curl is installed: the container turns
/// unhealthy while the database is unreachable or not migrated.
pub async fn run(settings: Settings, args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let bind: std::net::SocketAddr = settings.server.bind.parse().context("server.bind")?;
    let target = if bind.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bind.port())
    } else {
        bind
    };
    let path = if args.live { "/healthz" } else { "/readyz" };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(8), probe).await {
        Ok(Ok(response)) if response.starts_with(b"HTTP/1.1 200") => Ok(ExitCode::SUCCESS),
        Ok(Ok(response)) => {
            // /readyz says which check failed in its JSON body; show it (it holds no secrets).
            let text = String::from_utf8_lossy(&response);
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
            eprintln!("unhealthy: {target}{path} did not answer 200: {body}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {target}: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("unhealthy: {target}{path} did not answer within 8 s");
            Ok(ExitCode::FAILURE)
        }
    }
}
