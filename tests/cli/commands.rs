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
