use std::collections::BTreeMap;
use std::path::PathBuf;

use daygle::config::{self, Settings};

use crate::common::process::daygle;

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("daygle_mail_archiver.conf.example")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write_conf(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daygle_mail_archiver.conf");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// section -> keys, as written in the example file (commented lines ignored).
fn example_keys() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if !line.starts_with('#') && line.contains('=') {
            let key = line.split('=').next().unwrap().trim().to_string();
            out.entry(section.clone()).or_default().push(key);
        }
    }
    out
}

#[test]
fn the_example_file_lists_every_key_and_its_values_are_the_defaults() {
    let documented = example_keys();
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    for (section, keys) in defaults.as_object().unwrap() {
        for key in keys.as_object().unwrap().keys() {
            assert!(
                documented.get(section).is_some_and(|k| k.contains(key)),
                "{section}.{key} is missing from daygle_mail_archiver.conf.example"
            );
        }
    }
    let loaded = config::load_from(
        Some(&example_path()),
        env(&[("DAYGLE__SECURITY__DEV_MODE", "true")]),
        &[],
    )
    .expect("the example loads in dev mode");
    let mut expected = Settings::default();
    expected.security.dev_mode = true;
    expected.security.session_key = config::Secret::new(config::EXAMPLE_SESSION_KEY);
    expected.security.sealing_key = config::Secret::new(config::EXAMPLE_SEALING_KEY);
    // Every key the file sets is recorded as set by it (the settings page locks those).
    let file = config::Origin::File(example_path().display().to_string());
    assert_eq!(loaded.origins.get("smtp.host"), Some(&file));
    assert_eq!(
        loaded.origins.get("security.dev_mode"),
        Some(&config::Origin::Env("DAYGLE__SECURITY__DEV_MODE".into()))
    );
    expected.origins = loaded.origins.clone();
    assert_eq!(loaded, expected);
}

#[test]
fn the_published_example_secrets_are_refused_outside_dev_mode() {
    let errors = config::load_from(Some(&example_path()), env(&[]), &[]).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["security.session_key", "security.sealing_key"]);
    assert!(errors.to_string().contains("daygle keygen"));
}

#[test]
fn environment_beats_the_file_and_flags_beat_both() {
    let (_dir, path) = write_conf("[server]\nbind = 127.0.0.1:9000\n[storage]\nzstd_level = 5\n");
    let from_file = config::load_from(Some(&path), env(&[]), &[]).unwrap();
    assert_eq!(from_file.server.bind, "127.0.0.1:9000");
    assert_eq!(from_file.storage.zstd_level, 5);
    assert_eq!(
        from_file.clamav.action, "quarantine",
        "untouched keys keep defaults"
    );

    let vars = env(&[
        ("DAYGLE__SERVER__BIND", "127.0.0.1:9100"),
        ("DAYGLE__CLAMAV__ENABLED", "true"),
    ]);
    let from_env = config::load_from(Some(&path), vars.clone(), &[]).unwrap();
    assert_eq!(from_env.server.bind, "127.0.0.1:9100");
    assert!(from_env.clamav.enabled);
    assert_eq!(from_env.storage.zstd_level, 5);

    let flags = [("server.bind", "127.0.0.1:9200".to_string())];
    let from_flag = config::load_from(Some(&path), vars, &flags).unwrap();
    assert_eq!(from_flag.server.bind, "127.0.0.1:9200");
}

#[test]
fn every_problem_is_reported_with_its_key_at_once() {
    let (_dir, path) = write_conf(
        "[server]\nbind = not-an-address\npublic_url = ftp://x\n[storage]\nzstd_level = 40\n\
         [clamav]\naction = delete\n[logging]\nformat = xml\n",
    );
    let errors = config::load_from(Some(&path), env(&[]), &[]).unwrap_err();
    let keys: Vec<&str> = errors.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.bind",
            "server.public_url",
            "storage.zstd_level",
            "clamav.action",
            "logging.format"
        ]
    );
    for line in errors.to_string().lines() {
        assert!(
            ["; ", "use ", "e.g. "]
                .iter()
                .any(|hint| line.contains(hint)),
            "no fix given in: {line}"
        );
    }
}

#[test]
fn a_misspelt_key_and_a_wrongly_typed_value_are_named() {
    let (_dir, path) = write_conf("[server]\nbnid = 127.0.0.1:1\n");
    let errors = config::load_from(Some(&path), env(&[]), &[]).unwrap_err();
    assert!(errors.to_string().contains("bnid"), "{errors}");

    let (_dir, path) = write_conf("[database]\nmax_connections = many\n");
    let errors = config::load_from(Some(&path), env(&[]), &[]).unwrap_err();
    assert_eq!(errors.0[0].key, "database.max_connections", "{errors}");
}

#[test]
fn a_missing_config_file_given_explicitly_is_an_error() {
    let errors = config::load_from(
        Some(std::path::Path::new("/nonexistent/daygle.conf")),
        env(&[]),
        &[],
    )
    .unwrap_err();
    assert_eq!(errors.0[0].key, "--config");
}

#[test]
fn check_config_prints_one_line_per_problem_and_exits_2() {
    let (dir, path) = write_conf("[server]\nbind = nope\n[storage]\nzstd_level = 0\n");
    let out = daygle(dir.path())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("config error: server.bind:"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("config error: storage.zstd_level:"),
        "{stderr}"
    );
}

#[test]
fn check_config_masks_secrets_in_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let key = daygle::secrets::generate_key();
    let out = daygle(dir.path())
        .arg("check-config")
        .env(
            "DAYGLE__DATABASE__URL",
            "postgres://archiver:hunter2@db.internal:5432/daygle",
        )
        .env("DAYGLE__SECURITY__SEALING_KEY", &key)
        .env("DAYGLE__SMTP__PASSWORD", "smtp-secret")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("url = postgres://archiver:********@db.internal:5432/daygle"),
        "{stdout}"
    );
    assert!(stdout.contains("sealing_key = ********"));
    assert!(
        !stdout.contains("hunter2") && !stdout.contains(&key) && !stdout.contains("smtp-secret")
    );
}

/// Docker secrets: the database and SMTP passwords come from files named in the environment,
/// the way docker-compose.secrets.yml hands them over.
#[test]
fn passwords_can_come_from_files_named_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("postgres_password");
    // A password with characters a URL must escape, and the trailing newline `echo` leaves.
    std::fs::write(&db_file, "p@ss:w/rd\n").unwrap();
    let smtp_file = dir.path().join("smtp_password");
    std::fs::write(&smtp_file, "smtp-secret\r\n").unwrap();
    let settings = config::load_from(
        None,
        env(&[
            (
                "DAYGLE__DATABASE__URL",
                "postgres://daygle@postgres:5432/daygle",
            ),
            ("DAYGLE__DATABASE__PASSWORD_FILE", db_file.to_str().unwrap()),
            ("DAYGLE__SMTP__PASSWORD_FILE", smtp_file.to_str().unwrap()),
        ]),
        &[],
    )
    .expect("settings with password files load");
    let url = url::Url::parse(settings.database.url.expose()).unwrap();
    assert_eq!(url.username(), "daygle");
    assert_eq!(url.password(), Some("p%40ss%3Aw%2Frd"));
    assert_eq!(url.host_str(), Some("postgres"));
    assert_eq!(url.path(), "/daygle");
    assert_eq!(settings.smtp.password.expose(), "smtp-secret");
    // The password reached PostgreSQL's connection options intact.
    let options: sqlx::postgres::PgConnectOptions = settings.database.url.expose().parse().unwrap();
    assert_eq!(options.get_username(), "daygle");
    assert!(!format!("{settings:?}").contains("p@ss"));
}

#[test]
fn unusable_password_files_are_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("missing");
    let problems = |pairs: &[(&str, &str)]| -> Vec<String> {
        config::load_from(None, env(pairs), &[])
            .unwrap_err()
            .0
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    };
    let missing_text = missing.to_str().unwrap();
    let got = problems(&[
        ("DAYGLE__DATABASE__URL", "postgres://daygle@db/daygle"),
        ("DAYGLE__DATABASE__PASSWORD_FILE", missing_text),
        ("DAYGLE__SMTP__PASSWORD_FILE", empty.to_str().unwrap()),
    ]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with(&format!(
            "database.password_file: cannot read {missing_text}"
        )),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        format!("smtp.password_file: {} is empty", empty.display())
    );

    let file = dir.path().join("pw");
    std::fs::write(&file, "secret").unwrap();
    let pw = file.to_str().unwrap();
    assert_eq!(
        problems(&[
            ("DAYGLE__DATABASE__URL", "postgres://daygle:other@db/daygle"),
            ("DAYGLE__DATABASE__PASSWORD_FILE", pw),
            ("DAYGLE__SMTP__PASSWORD", "x"),
            ("DAYGLE__SMTP__PASSWORD_FILE", pw),
        ]),
        [
            "database.password_file: is set while database.url holds a password too; keep only one of the two",
            "smtp.password_file: is set together with smtp.password; keep only one of the two",
        ]
    );
    assert_eq!(
        problems(&[("DAYGLE__DATABASE__PASSWORD_FILE", pw)]),
        [
            "database.password_file: is only used with database.url (the private cluster needs no password); set database.url or remove it"
        ]
    );
}
