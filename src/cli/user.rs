//! `daygle user create` and `daygle user reset-password`. Passwords come from a prompt (echo
//! off) or from stdin, never from the command line where `ps` and shell history would see them.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use daygle::audit::Actor;
use daygle::auth::manage::{self, NewUser};
use daygle::auth::{roles, users};
use daygle::config::Settings;

use super::context::{Schema, require_archive, with_database};

/// `daygle user …`: the subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (Read Only unless --admin). The password is read from the terminal or stdin.
    Create(CreateArgs),
    /// Set a new password for a user and end all their sessions. Reads it like `create`.
    ResetPassword(ResetArgs),
}

/// `daygle user create`: the new user.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The username people type to sign in.
    pub name: String,
    /// Make the user an Administrator.
    #[arg(long)]
    pub admin: bool,
    /// The user's e-mail address.
    #[arg(long, default_value = "")]
    pub email: String,
}

/// `daygle user reset-password`: whose password.
#[derive(Debug, Args)]
pub struct ResetArgs {
    pub name: String,
}

/// Runs a `daygle user` subcommand against the migrated database.
pub async fn run(settings: Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    if matches!(command, UserCommand::ResetPassword(_)) {
        require_archive(&settings)?;
    }
    with_database(settings, Schema::Migrate, async |ctx| {
        let pool = ctx.pool();
        let min = ctx.settings.security.min_password_length;
        let actor = Actor::cli();
        let result: anyhow::Result<()> = async {
            match command {
                UserCommand::Create(args) => {
                    let role = if args.admin {
                        roles::ADMINISTRATOR
                    } else {
                        roles::READ_ONLY
                    };
                    let role_id = users::role_id_by_name(pool, role).await?;
                    let password = read_new_password()?;
                    let new = NewUser {
                        username: &args.name,
                        email: &args.email,
                        password: &password,
                        role_ids: &[role_id],
                        account_ids: &[],
                    };
                    let id = manage::create_user(pool, &actor, &new, min)
                        .await
                        .context("Failed to save the user")?;
                    println!(
                        "created user {} (id {id}) with role {role}",
                        args.name.trim()
                    );
                }
                UserCommand::ResetPassword(args) => {
                    let user = ctx.user(&args.name).await?;
                    let password = read_new_password()?;
                    manage::reset_password(pool, &actor, user.id, &password, min)
                        .await
                        .context("Failed to save the user")?;
                    println!(
                        "password of {} reset; their sessions have ended",
                        user.username
                    );
                }
            }
            Ok(())
        }
        .await;
        super::seal_audit(&ctx.settings, pool).await;
        result?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// Prompts twice on a terminal (echo off); otherwise reads one line from stdin.
fn read_new_password() -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .context("Failed to read the password from stdin")?;
        let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        if password.is_empty() {
            bail!("no password on stdin");
        }
        return Ok(password);
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Again: ")?;
    if *first != *second {
        bail!("the two passwords do not match");
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let original = tcgetattr(&stdin).context("Failed to read terminal settings")?;
    let mut silent = original.clone();
    silent.local_flags.remove(LocalFlags::ECHO);
    silent.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    tcsetattr(&stdin, SetArg::TCSANOW, &silent).context("Failed to turn off echo")?;
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    // Restore echo whatever happened while reading.
    tcsetattr(&stdin, SetArg::TCSANOW, &original).context("Failed to restore the terminal")?;
    read.context("Failed to read the password")?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}
