//! Runs the browser tests (tests/browser/*.test.mjs: msgbus.js and the demos in headless
//! Chromium, driven by playwright-core) against this build's binary, so `cargo test` covers
//! them too. Needs node, npm and /usr/bin/chromium (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

#[test]
fn msgbus_js_and_the_demos_work_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (install node and npm: .ci/run does)");
        assert!(status.success(), "npm ci failed");
    }
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("MSGBUS_BIN", env!("CARGO_BIN_EXE_msgbus"))
        .output()
        .expect("node");
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
    assert!(count("ℹ pass ") >= 6, "{report}");
}
