//! What the commands share: the settings, the keys, and a database that is closed (and a
//! private cluster the command started, stopped) however the command ends.

use anyhow::Context as _;
use sqlx::PgPool;

use daygle::auth::users::{self, User};
use daygle::config::Settings;
use daygle::db::{self, Database};
use daygle::ingest::accounts::{self, Account};
use daygle::secrets::Keys;

/// Whether a command brings the schema up to date before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply pending migrations first (commands that write).
    Migrate,
    /// Use the schema as it is (read-only checks, and `migrate`, which reports on it).
    AsIs,
}

/// A command's view of the archiver: its settings and its open database.
pub struct CliContext {
    pub settings: Settings,
    pub database: Database,
}

impl CliContext {
    /// The connection pool of the open database.
    pub fn pool(&self) -> &PgPool {
        &self.database.pool
    }

    /// The configured keys (generated on first run, as `serve` would).
    pub async fn keys(&self) -> anyhow::Result<Keys> {
        load_keys(&self.settings).await
    }

    /// The archive account called `name` (any case), with the one message every command gives
    /// when there is none.
    pub async fn account(&self, name: &str) -> anyhow::Result<Account> {
        accounts::find_by_name(self.pool(), name)
            .await?
            .with_context(|| format!("no account named {name}; see `daygle account list`"))
    }

    /// The settings as `serve` runs with them: the file and environment, then what an
    /// administrator saved on the settings page (runtime settings live in the database).
    pub async fn live_settings(&self, keys: &Keys) -> anyhow::Result<daygle::settings::Live> {
        let live = daygle::settings::Live::new(self.settings.clone());
        daygle::settings::store::reload(self.pool(), &keys.sealing, &live)
            .await
            .context("Failed to read the settings saved on the settings page")?;
        Ok(live)
    }

    /// The user called `name` (any case).
    pub async fn user(&self, name: &str) -> anyhow::Result<User> {
        users::find_by_username(self.pool(), name)
            .await?
            .with_context(|| format!("there is no user named {name}"))
    }
}

/// The configured keys, loaded off the async threads (a first run generates and writes them).
pub async fn load_keys(settings: &Settings) -> anyhow::Result<Keys> {
    let security = settings.security.clone();
    let data_dir = settings.data_dir();
    tokio::task::spawn_blocking(move || Keys::load(&security, &data_dir))
        .await
        .context("key loading task failed")?
        .context("Failed to load the sealing key")
}

/// For commands that only read (listings, exports, checks): refuses to go on when the private
/// database is not there, rather than create an empty archive wherever the command was run
/// from and report that it holds nothing (the walk of issue #17). An external database
/// (`database.url`) is the operator's to create.
pub fn require_archive(settings: &Settings) -> anyhow::Result<()> {
    if !settings.uses_embedded_database() {
        return Ok(());
    }
    let data_dir = settings.data_dir();
    let cluster = db::embedded_root(&data_dir).join("data").join("PG_VERSION");
    anyhow::ensure!(
        cluster.exists(),
        "there is no archive in {} (no database there); run daygle where its \
         daygle_mail_archiver.conf is, or pass --config or --data-dir",
        std::path::absolute(&data_dir)
            .unwrap_or(data_dir.clone())
            .display()
    );
    Ok(())
}

/// Opens the database (starting the private cluster for the command when nothing runs it),
/// runs `command`, and closes the database whether `command` succeeded or not. Should this
/// task be cancelled or panic instead, the cluster lease's `Drop` still stops the cluster.
pub async fn with_database<T>(
    settings: Settings,
    schema: Schema,
    command: impl AsyncFnOnce(&CliContext) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let database = db::open_for_command(&settings)
        .await
        .context("Failed to open the database")?;
    let lost = database.watch().lost();
    let context = CliContext { settings, database };
    let work = async {
        if schema == Schema::Migrate {
            db::migrate(context.pool())
                .await
                .context("Failed to migrate")?;
        }
        command(&context).await
    };
    // Should the database die under the command, stop within seconds with one sentence rather
    // than let every query wait out the pool's timeout. Dropping the command's future rolls
    // back what it had not committed; what it committed stays.
    let (result, gone) = tokio::select! {
        r = work => (r, false),
        problem = lost => (Err(anyhow::anyhow!(
            "the database went away while the command ran ({problem}); what was committed is kept, run the command again once PostgreSQL is back"
        )), true),
    };
    if gone {
        let _ = context.database.abandon().await;
        return result;
    }
    let closed = context.database.close().await;
    let value = result?;
    closed.context("Failed to close the database")?;
    Ok(value)
}
