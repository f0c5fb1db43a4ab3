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
