//! Shell completions and the manual page, generated from the clap
//! definitions: each is non-empty, parses in its own tool where that tool is
//! installed, and names the subcommands.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::run;

const SUBCOMMANDS: &[&str] = &[
    "keygen",
    "id",
    "trust",
    "peers",
    "untrust",
    "cameras",
    "listen",
    "call",
    "demo",
    "bench",
    "completions",
    "manpage",
];

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "vchat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Whether `program` can be run here.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `program ARGS` with `input` on stdin; returns (success, stderr).
fn feed(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_name_every_subcommand_and_parse() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for subcommand in SUBCOMMANDS {
            assert!(script.contains(subcommand), "{shell}: no {subcommand}");
        }
        // `-n`: read and parse without running anything.
        if installed(shell) {
            let (ok, err) = feed(shell, &["-n"], &script);
            assert!(ok, "{shell} cannot parse the script: {err}");
        } else {
            eprintln!("{shell} is not installed: its script was not parsed");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

#[test]
fn the_manual_page_is_roff_listing_the_subcommands() {
    let page = stdout_of(&["manpage"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH vchat 1"),
        "{page}"
    );
    assert!(page.contains(".TH vchat 1"), "a section-1 page");
    for subcommand in SUBCOMMANDS {
        assert!(page.contains(subcommand), "no {subcommand}");
    }
    assert!(page.contains("Private peer\\-to\\-peer video chat"));
    // man -l renders a page from a file; check it renders without warnings.
    if installed("man") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vchat.1");
        std::fs::write(&path, &page).unwrap();
        let out = Command::new("man")
            .args(["-l", "--warnings", path.to_str().unwrap()])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("listen"), "{text}");
    } else {
        // scripts/setup.sh installs man-db: under CI (.ci/run sets CI) the
        // page must really be rendered.
        assert!(
            std::env::var_os("CI").is_none(),
            "man is not installed, so the page was not rendered"
        );
        eprintln!("man is not installed: the page was not rendered");
    }
}
