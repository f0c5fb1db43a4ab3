use crate::common::process::daygle;

#[test]
fn keygen_prints_a_new_32_byte_key_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = daygle(dir.path()).arg("keygen").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    assert!(daygle::secrets::decode_key(&a).is_ok());
}

#[test]
fn every_subcommand_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = daygle(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A long description wraps onto lines indented further: not commands.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.contains(&"serve".to_string()), "{help}");
    for command in commands {
        let out = daygle(dir.path())
            .args([command.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--config") && text.contains("--data-dir"),
            "{command}: {text}"
        );
    }
}

#[test]
fn a_command_whose_database_url_is_unreachable_says_so_at_once_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let out = daygle(dir.path())
        .args(["sync", "--once"])
        .env(
            "DAYGLE__DATABASE__URL",
            format!("postgres://daygle@127.0.0.1:{port}/daygle"),
        )
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!(
            "PostgreSQL at 127.0.0.1:{port} (database.url) is not reachable"
        )),
        "{stderr}"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// Run from a directory that holds no archive, commands that only read say so and create
/// nothing: no empty database that then reports "no accounts yet", no empty export file
/// (the walk of issue #17).
#[test]
fn read_only_commands_where_there_is_no_archive_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 5] = [
        &["account", "list"],
        &["workers"],
        &["token", "list"],
        &["verify", "archive"],
        &["export", "--format", "zip", "--output", "out.zip"],
    ];
    for args in commands {
        let out = daygle(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("there is no archive in"),
            "{args:?}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}
