use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    println!("{}", daygle::secrets::generate_key());
    Ok(ExitCode::SUCCESS)
}
