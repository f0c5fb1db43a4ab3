use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use daygle::config::Settings;

/// GET /healthz on the configured bind address; exit 0 when it answers 200. For container
/// HEALTHCHECKs, where no curl is installed.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let bind: std::net::SocketAddr = settings.server.bind.parse().context("server.bind")?;
    let target = if bind.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bind.port())
    } else {
        bind
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(true)) => Ok(ExitCode::SUCCESS),
        Ok(Ok(false)) => {
            eprintln!("unhealthy: {target}/healthz did not answer 200");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {target}: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("unhealthy: {target} did not answer within 5 s");
            Ok(ExitCode::FAILURE)
        }
    }
}
