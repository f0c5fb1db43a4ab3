use std::process::ExitCode;

/// Prints a new random 32-byte key, base64-encoded.
pub fn run() -> anyhow::Result<ExitCode> {
    println!("{}", daygle::secrets::generate_key());
    Ok(ExitCode::SUCCESS)
}
