//! `docs/openapi.yaml` against the running server: its operations are
//! exactly the JSON routes of `daemon/src/http/api.rs` (plus `/healthz`),
//! each answers on the built daemon (not 404 or 405), and Schemathesis (PyPI,
//! a property-based checker installed by tools/test.sh) fuzzes every
//! operation, with an agent secret and a real device token, and finds no 500,
//! no undocumented status or content type and no answer outside its schema.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use pinwheel_tests::{http_get, mobile_token, run, Daemon};
use serde_json::{json, Value};

const AGENT_SECRET: &str = "portal-secret-0123456789";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn document_path() -> PathBuf {
    repo().join("docs/openapi.yaml")
}

/// The document as JSON, read with PyYAML (a dependency of Schemathesis).
fn document() -> Value {
    let out = run(Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)")
        .arg(document_path()));
    assert!(
        out.success(),
        "cannot read docs/openapi.yaml with python3 and PyYAML (run tools/test.sh, which installs schemathesis and with it PyYAML): {out}"
    );
    serde_json::from_str(&out.stdout).expect("the YAML converts to JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths in the document");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete", "head", "options"]
                .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// `(METHOD, path)` of every `.route("PATH", get(..)/post(..))` in `file`,
/// with `prefix` in front of the path.
fn routes_in_source(file: &Path, prefix: &str) -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let mut routes = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else {
            continue;
        };
        let Some((path, handler)) = rest.split_once('"') else {
            continue;
        };
        for method in ["get", "post", "put", "patch", "delete"] {
            if handler.contains(&format!(" {method}(")) || handler.contains(&format!(".{method}("))
            {
                routes.insert((method.to_uppercase(), format!("{prefix}{path}")));
            }
        }
    }
    routes
}

#[test]
fn document_operations_are_the_json_routes() {
    let doc = document();
    assert_eq!(
        doc["openapi"].as_str().map(|v| &v[..2]),
        Some("3."),
        "an OpenAPI 3 document"
    );
    let documented = documented(&doc);

    let mut served = routes_in_source(&repo().join("daemon/src/http/api.rs"), "/api/v1");
    assert!(
        served.len() >= 5,
        "expected the /api/v1 routes in daemon/src/http/api.rs, found {served:?}"
    );
    served.insert(("GET".into(), "/healthz".into()));
    assert_eq!(
        documented, served,
        "docs/openapi.yaml and the router's JSON routes differ (left: document, right: daemon/src/http/api.rs)"
    );

    // And on the running server: every documented operation exists (no 404,
    // no 405), and the document's error shape is what comes back.
    let d = Daemon::start_default();
    for (method, path) in &documented {
        let reply = match method.as_str() {
            "GET" => http_get(&d.url(path)).expect("GET"),
            "POST" => d.post(path, &json!({}), None),
            other => panic!("no probe for {other}"),
        };
        assert!(
            reply.status != 404 && reply.status != 405,
            "{method} {path} is documented but the server answers {}: {}",
            reply.status,
            reply.body
        );
        if reply.status >= 400 {
            let body = reply.json();
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{method} {path}: error not {{error, message}}: {}",
                reply.body
            );
        }
    }
    // A route not in the document is not served.
    assert_eq!(http_get(&d.url("/api/v1/nonexistent")).unwrap().status, 404);
}

/// Schemathesis' command line (its `st` command), run by `python3`, so it
/// is found wherever pip put its scripts. Fails (never skips) when missing.
const ST: &str =
    "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'st'; schemathesis()";

fn check_schemathesis() {
    let out = run(Command::new("python3").args(["-c", ST, "--version"]));
    assert!(
        out.success() && out.stdout.contains("version 4."),
        "Schemathesis 4 not found for python3: run tools/test.sh, which installs it from PyPI \
         (python3 -m pip install schemathesis): {out}"
    );
}

/// Runs `st run` (Schemathesis) on the document against `base` with `args`; panics with
/// its whole output unless it finds nothing.
fn fuzz(base: &str, report: &Path, args: &[&str]) {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", ST, "run"])
        .arg(document_path())
        .args(["--url", base])
        .args([
            "--checks",
            "all",
            // The agent API answers a request without its secret 403, as
            // for a wrong one (documented), not the 401 this check wants.
            "--exclude-checks",
            "missing_required_header,positive_data_acceptance",
            "--max-examples",
            "150",
            "--seed",
            "20261129",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(report)
        .env("NO_COLOR", "1")
        // Its caches go to the daemon's temp folder, not the checkout.
        .current_dir(report.parent().expect("report folder has a parent"))
        .args(args);
    let out = run(&mut cmd);
    println!("{}", out.stdout);
    assert!(
        out.success(),
        "Schemathesis found problems with {base} against docs/openapi.yaml ({args:?}): {out}"
    );
    assert!(
        out.stdout.contains("passed") && !out.stdout.contains(" 0 generated"),
        "Schemathesis generated no test cases: {out}"
    );
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() {
    check_schemathesis();
    let d = Daemon::start(|c| {
        c.extra = format!(
            "[[agent]]\nname = \"portal\"\naddress = \"127.0.0.1/32\"\nsecret = \"{AGENT_SECRET}\"\n"
        );
    });
    // A real device, so the strings endpoint is fuzzed past its token check.
    d.add_user("alice", "1234");
    let state = d.path("alice.json");
    d.provision_device(&state, "alice");
    let token = mobile_token(&state);
    let report = d.path("schemathesis-report");

    let agent = format!("Authorization: Bearer {AGENT_SECRET}");
    fuzz(
        &d.base_url(),
        &report,
        &["-H", &agent, "--exclude-path", "/api/v1/strings"],
    );
    let device = format!("Authorization: Bearer {token}");
    fuzz(
        &d.base_url(),
        &report,
        &["-H", &device, "--include-path", "/api/v1/strings"],
    );
    // The daemon is still healthy after the run.
    assert_eq!(http_get(&d.url("/healthz")).unwrap().status, 200);
}
