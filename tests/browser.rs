//! Runs the browser tests (tests/browser/*.test.mjs: msgbus.js and the demos in headless
//! Chromium, driven by playwright-core) against this build's binary, so `cargo test` covers
//! them too. Needs node, npm and /usr/bin/chromium (`.ci/run` installs them).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The tests in tests/browser/*.test.mjs; every one must run and pass.
const BROWSER_TESTS: usize = 21;
/// Per test, enforced by node's runner.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// For the whole run, enforced here.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn msgbus_js_and_the_demos_work_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let mut npm = Guarded::spawn(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci (install node and npm: .ci/run does)",
        );
        assert!(npm.wait(RUN_TIMEOUT).success(), "npm ci failed");
    }
    // Its own process group, so that on a timeout the runner and the servers it started end
    // together (Chromium, in a group of its own, is closed by playwright on SIGTERM).
    let mut node = Command::new("node");
    node.arg("--test")
        .arg(format!("--test-timeout={}", TEST_TIMEOUT.as_millis()))
        .arg("--test-reporter=spec")
        .current_dir(&dir)
        .env("MSGBUS_BIN", server_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = Guarded::spawn_group(&mut node, "node --test").wait_with_output(RUN_TIMEOUT);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let count = |label: &str| -> usize {
        report
            .lines()
            .find_map(|line| line.strip_prefix(label)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in:\n{report}"))
    };
    assert_eq!(count("ℹ fail "), 0, "{report}");
    assert_eq!(count("ℹ tests "), BROWSER_TESTS, "{report}");
    assert_eq!(count("ℹ pass "), BROWSER_TESTS, "{report}");
}
