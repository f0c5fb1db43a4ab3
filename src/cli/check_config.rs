use std::process::ExitCode;

use super::{GlobalArgs, load_settings};

/// Exit 0 and the effective settings when valid; exit 2 with one line per problem otherwise.
pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let settings = load_settings(global, &[])?;
    println!("# configuration is valid; effective settings (secrets masked):\n");
    print!("{}", settings.to_masked_ini());
    Ok(ExitCode::SUCCESS)
}
