//! An SMTP sink on aiosmtpd (from PyPI): `smtp_sink.py` beside this crate's
//! manifest, on 127.0.0.1 on a port the kernel picks. It saves every
//! accepted message as one JSON file (`mail_from`, `rcpt_tos`, `login`,
//! `data`); see the script for its options (`--auth`, `--starttls`,
//! `--implicit`) and the recipients it refuses.
//!
//! Needs `python3` with aiosmtpd (`tools/test.sh` installs it); set
//! `PINWHEEL_PYTHON` to use another interpreter.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Python interpreter: `PINWHEEL_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PINWHEEL_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The sink script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py")
}

/// Fails (never skips) when aiosmtpd is missing.
pub fn require_aiosmtpd() {
    let python = python();
    let found = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "this test needs aiosmtpd for {python}, and it is missing: run tools/test.sh, \
         which installs it (`{python} -m pip install aiosmtpd`)"
    );
}

/// A running sink; killed (and waited for) on drop.
pub struct Sink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Starts the sink with the script's extra `args` and waits (up to
    /// 30 s) for it to report its port.
    pub fn start(args: &[&str]) -> Sink {
        require_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(script())
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the SMTP sink did not report its port within 30 s");
            }
        };
        let port = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the SMTP sink did not start (stdout: {line:?}); see its stderr above");
            }
        };
        Sink { child, port, dir }
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits (up to 30 s) for more than `seen` messages; returns them all.
    pub fn wait_messages(&self, seen: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() > seen {
                return messages;
            }
            assert!(Instant::now() < deadline, "no new email in the sink");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
