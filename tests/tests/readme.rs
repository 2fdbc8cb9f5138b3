//! The README's walkthroughs (security strings, then OATH), run as written:
//! their shell blocks are taken from README.md, pointed at a private daemon
//! (the README's fixed ports, paths and release binaries replaced by this
//! test's own), and run with bash. Each must end with Access-Accept, then
//! Access-Reject for the same code, as the README promises.

use std::process::Command;

use pinwheel_tests::{bin_dir, radclient, Daemon};

/// The fenced ```sh blocks of the README section titled `title`, in order.
fn walkthrough_blocks(readme: &str, title: &str) -> Vec<String> {
    let start = readme
        .find(title)
        .unwrap_or_else(|| panic!("README has a {title:?} section"));
    let section = &readme[start..];
    let end = section[3..]
        .find("\n## ")
        .map(|i| i + 3)
        .unwrap_or(section.len());
    let section = &section[..end];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

/// Runs the README section `title` against `d`; returns stdout and a report.
fn run_section(d: &Daemon, title: &str) -> (String, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let blocks = walkthrough_blocks(&readme, title);
    assert!(blocks.len() >= 2, "{title} blocks: {blocks:#?}");
    let radclient_dir = radclient().parent().unwrap().to_path_buf();
    let script = blocks
        .join("\n")
        .replace(
            "--config etc/pinwheel.toml",
            &format!("--config {}", d.config_path().display()),
        )
        .replace("./target/release/", &format!("{}/", bin_dir().display()))
        .replace(
            "/var/lib/pinwheel/spool",
            &d.spool_dir().display().to_string(),
        )
        .replace("http://127.0.0.1:8080", &d.base_url())
        .replace(
            "radclient -x 127.0.0.1 ",
            &format!("radclient -x 127.0.0.1:{} ", d.layout.radius_port),
        );
    assert!(
        !script.contains(":8080") && !script.contains("/var/lib/pinwheel"),
        "a README command was not redirected to the test daemon:\n{script}"
    );
    let home = d.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&home)
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("PINWHEEL_MOBILE_STATE")
        .env(
            "PATH",
            format!(
                "{}:{}",
                radclient_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("script:\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    (stdout, report)
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let d = Daemon::start_default();
    let (stdout, report) = run_section(&d, "## Walkthrough");
    assert!(stdout.contains("user alice added"), "{report}");
    assert!(stdout.contains("Provisioning. Please wait..."), "{report}");
    assert!(stdout.contains("Device Provisioned"), "{report}");
    let accept = stdout.find("Received Access-Accept").expect(&report);
    let reject = stdout.find("Received Access-Reject").expect(&report);
    assert!(accept < reject, "Accept must come first:\n{report}");
    // Status-Server at the end is answered too.
    assert_eq!(
        stdout.matches("Received Access-Accept").count(),
        2,
        "one Accept for the code, one for Status-Server:\n{report}"
    );
    assert!(
        stdout.contains("Security strings updated (batch 2)"),
        "{report}"
    );
}

#[test]
fn readme_oath_walkthrough_runs_as_written() {
    let d = Daemon::start_default();
    // Keep the code and its check inside one 30 s step.
    let left = 30 - pinwheel::unix_now() % 30;
    if left < 8 {
        std::thread::sleep(std::time::Duration::from_secs(left as u64 + 1));
    }
    let (stdout, report) = run_section(&d, "## OATH walkthrough");
    assert!(stdout.contains("Device Provisioned"), "{report}");
    assert!(
        stdout.contains("Authenticator key: otpauth://totp/Pinwheel:bob?secret="),
        "{report}"
    );
    let accept = stdout.find("Received Access-Accept").expect(&report);
    let reject = stdout.find("Received Access-Reject").expect(&report);
    assert!(accept < reject, "Accept must come first:\n{report}");
}
