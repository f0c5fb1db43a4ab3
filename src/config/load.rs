//! Reading the settings: built-in defaults < the INI file < `DAYGLE__SECTION__KEY` < flags;
//! then the secrets named by `*_file` keys are read.

use std::path::Path;

use super::validate::problem;
use super::{ConfigErrors, Problem, Settings};

/// The config file looked for when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "daygle_mail_archiver.conf";
const ENV_PREFIX: &str = "DAYGLE";

/// Where the settings come from: an explicit file must exist; without one the default file
/// in the working directory is read when present.
pub fn load(
    explicit_path: Option<&Path>,
    overrides: &[(&str, String)],
) -> Result<Settings, ConfigErrors> {
    load_from(explicit_path, std::env::vars(), overrides)
}

/// Like [`load`], with the environment passed in so tests need not touch the process's own;
/// `overrides` (from command-line flags) win over everything.
pub fn load_from(
    explicit_path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(&str, String)],
) -> Result<Settings, ConfigErrors> {
    let mut builder = config::Config::builder();
    let mut origins = super::Origins::default();
    match explicit_path {
        Some(path) => {
            if !path.is_file() {
                return Err(ConfigErrors(vec![problem(
                    "--config",
                    format!(
                        "file {} does not exist; pass the path of your daygle_mail_archiver.conf, or leave --config out to use defaults",
                        path.display()
                    ),
                )]));
            }
            builder = builder
                .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Ini));
            file_origins(
                &mut origins,
                config::File::from(path.to_path_buf()).format(config::FileFormat::Ini),
                &path.display().to_string(),
            );
        }
        None => {
            builder = builder.add_source(
                config::File::new(DEFAULT_CONFIG_FILE, config::FileFormat::Ini).required(false),
            );
            file_origins(
                &mut origins,
                config::File::new(DEFAULT_CONFIG_FILE, config::FileFormat::Ini).required(false),
                DEFAULT_CONFIG_FILE,
            );
        }
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    for var in env.keys() {
        let key = var[ENV_PREFIX.len() + 2..]
            .to_ascii_lowercase()
            .replace("__", ".");
        origins.set(key, super::Origin::Env(var.clone()));
    }
    for (key, _) in overrides {
        origins.set(*key, super::Origin::Flag);
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (key, value) in overrides {
        builder = builder
            .set_override(*key, value.as_str())
            .map_err(|e| ConfigErrors(vec![problem(key, e.to_string())]))?;
    }
    let mut settings: Settings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigErrors(vec![deserialize_problem(&e)]))?;
    // A password read from smtp.password_file is set by whatever set that key.
    if let Some(o) = origins.get("smtp.password_file").cloned() {
        origins.set("smtp.password", o);
    }
    if let Some(o) = origins.get("oidc.client_secret_file").cloned() {
        origins.set("oidc.client_secret", o);
    }
    settings.origins = origins;
    let mut problems = super::secret_files::read_secret_files(&mut settings);
    problems.extend(settings.validate());
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// Records every `section.key` the file sets. A file that cannot be read is reported by the
/// main build, so here it simply sets nothing.
fn file_origins(origins: &mut super::Origins, file: impl config::Source, name: &str) {
    let Ok(sections) = file.collect() else {
        return;
    };
    for (section, keys) in sections {
        if let Ok(keys) = keys.into_table() {
            for key in keys.keys() {
                origins.set(
                    format!("{section}.{key}"),
                    super::Origin::File(name.to_string()),
                );
            }
        }
    }
}

fn deserialize_problem(e: &config::ConfigError) -> Problem {
    let text = e.to_string();
    // config names the key in a trailing `for key "x.y"`; lift it to the front of the line.
    if let Some(idx) = text.find(" for key `").or_else(|| text.find(" for key \"")) {
        let key = text[idx + 10..].trim_end_matches(['`', '"', ' ']);
        let key = key.split(['`', '"']).next().unwrap_or(key);
        return problem(
            key,
            format!(
                "{}; fix the value in the config file or the DAYGLE__ variable",
                &text[..idx]
            ),
        );
    }
    if text.contains("unknown field") {
        return problem(
            "config",
            format!(
                "{text}; keys and sections are lower-case, see daygle_mail_archiver.conf.example"
            ),
        );
    }
    problem("config", text)
}
