//! Every stylesheet the binary serves must parse, and every block must close where it was meant
//! to. An unclosed `@media (max-width: 640px) {` is still valid CSS (the end of the file closes
//! it), which is how the desktop layout lost all form and button styles unnoticed (issue #17):
//! so besides the parser we check that braces balance before the end of the file.

use std::path::{Path, PathBuf};

use lightningcss::stylesheet::{ParserOptions, PrinterOptions, StyleSheet};

fn stylesheets() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("static")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "css") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "no stylesheets under static/");
    found
}

/// Where the brace structure goes wrong: a `}` with nothing open, or blocks still open at the
/// end of the file (with the line each was opened on). Comments and strings are skipped.
fn unbalanced_braces(css: &str) -> Option<String> {
    let mut open: Vec<usize> = Vec::new();
    let (mut line, mut chars) = (1, css.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' | '\'' => {
                let mut escaped = false;
                for s in chars.by_ref() {
                    match s {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        _ if s == c => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '{' => open.push(line),
            '}' if open.pop().is_none() => {
                return Some(format!("line {line}: `}}` closes nothing"));
            }
            _ => {}
        }
    }
    (!open.is_empty()).then(|| format!("blocks opened on lines {open:?} are never closed"))
}

#[test]
fn every_stylesheet_parses_and_closes_every_block() {
    for path in stylesheets() {
        let css = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        if let Some(problem) = unbalanced_braces(&css) {
            panic!("{name}: {problem}");
        }
        let options = ParserOptions {
            filename: name.clone(),
            error_recovery: false,
            ..ParserOptions::default()
        };
        let sheet = StyleSheet::parse(&css, options).unwrap_or_else(|e| panic!("{name}: {e}"));
        sheet
            .to_css(PrinterOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_brace_check_finds_the_unclosed_media_block_of_issue_17() {
    let broken = "a { color: red; }\n@media (max-width: 640px) {\n  a { color: blue; }\n/* forms */\ninput { display: block; }\n";
    assert_eq!(
        unbalanced_braces(broken).as_deref(),
        Some("blocks opened on lines [2] are never closed")
    );
    assert!(unbalanced_braces("a { content: \"}\"; } /* { */").is_none());
    assert!(unbalanced_braces("}").is_some());
    // The parser alone accepts it: the end of the file closes the block.
    assert!(StyleSheet::parse(broken, ParserOptions::default()).is_ok());
}
