//! `GET /metrics` (Prometheus text) from loopback names every series and its
//! counts move with RADIUS accepts and rejects; a peer outside `[http]
//! metrics_from` gets 403. `pinwheelctl clients` shows a NAS's last request.

use pinwheel_tests::{http_get, mobile_otc, Daemon, RadiusOutcome::*};

/// The value of the sample line starting with `series ` in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        .parse()
        .unwrap()
}

const ACCEPTS: &str = "pinwheel_requests_total{source=\"radius\",result=\"accept\"}";
const REJECTS: &str = "pinwheel_requests_total{source=\"radius\",result=\"reject\"}";
const LATENCY: &str = "pinwheel_request_duration_seconds_count{source=\"radius\"}";
const COMMITS: &str = "pinwheel_store_commit_duration_seconds_count";

#[test]
fn metrics_count_radius_decisions_and_clients_show_last_seen() {
    let d = Daemon::start_default();
    let before = http_get(&d.url("/metrics")).unwrap();
    assert_eq!(before.status, 200);
    assert_eq!(before.content_type, "text/plain");
    for name in [
        "# TYPE pinwheel_requests_total counter",
        "# TYPE pinwheel_request_duration_seconds histogram",
        "# TYPE pinwheel_plugin_failures_total counter",
        "# TYPE pinwheel_store_commit_duration_seconds histogram",
        "pinwheel_requests_total{source=\"agent\",result=\"accept\"} 0",
        "pinwheel_request_duration_seconds_bucket{source=\"radius\",le=\"+Inf\"}",
    ] {
        assert!(
            before.body.contains(name),
            "{name} missing:\n{}",
            before.body
        );
    }
    let clients = d.ctl_ok(&["clients"]);
    assert!(clients.contains("never"), "{clients}");

    d.add_user("alice", "1234");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");
    let code = mobile_otc(&phone, "1234", Some(3));
    assert_eq!(d.auth("alice", &code), Accept);
    assert_eq!(d.auth("alice", &code), Reject);
    let after = http_get(&d.url("/metrics")).unwrap().body;
    assert_eq!(
        sample(&after, ACCEPTS) - sample(&before.body, ACCEPTS),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, REJECTS) - sample(&before.body, REJECTS),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, LATENCY) - sample(&before.body, LATENCY),
        2.0,
        "{after}"
    );
    assert!(
        sample(&after, COMMITS) > sample(&before.body, COMMITS),
        "{after}"
    );

    let clients = d.ctl_ok(&["clients"]);
    let row = clients
        .lines()
        .find(|l| l.starts_with("localhost "))
        .unwrap_or_else(|| panic!("{clients}"));
    assert!(row.contains("127.0.0.1/32"), "{row}");
    assert!(!row.contains("never"), "{row}");
    assert!(
        row.trim_end().ends_with(" 2"),
        "two requests counted: {row}"
    );
    let json: serde_json::Value = serde_json::from_str(&d.ctl_ok(&["--json", "clients"])).unwrap();
    let seen = json[0]["last_seen"].as_i64().expect("last_seen set");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - seen).abs() < 60, "{json}");
}

#[test]
fn metrics_are_refused_outside_metrics_from() {
    let d = Daemon::start(|c| c.http_extra = "metrics_from = [\"10.0.0.0/8\"]".into());
    let reply = http_get(&d.url("/metrics")).unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(!reply.body.contains("pinwheel_requests_total"));
}

#[test]
fn agent_decisions_are_counted_by_source_and_result() {
    const SECRET: &str = "metrics-agent-secret-0123456789";
    let d = Daemon::start(|c| {
        c.extra = format!(
            "[[agent]]\nname = \"portal\"\naddress = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\n"
        )
    });
    d.add_user("bob", "4321");
    let phone = d.path("bob.json");
    d.provision_device(&phone, "bob");
    let code = mobile_otc(&phone, "4321", Some(5));
    let accepts = "pinwheel_requests_total{source=\"agent\",result=\"accept\"}";
    let rejects = "pinwheel_requests_total{source=\"agent\",result=\"reject\"}";
    let before = http_get(&d.url("/metrics")).unwrap().body;
    for _ in 0..2 {
        // The second one is a replay: rejected.
        let r = pinwheel_tests::http_post(
            &d.url("/api/v1/auth"),
            &serde_json::json!({"username": "bob", "otc": code}),
            Some(SECRET),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    let after = http_get(&d.url("/metrics")).unwrap().body;
    assert_eq!(
        sample(&after, accepts) - sample(&before, accepts),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, rejects) - sample(&before, rejects),
        1.0,
        "{after}"
    );
    // RADIUS counts did not move.
    assert_eq!(sample(&after, ACCEPTS), sample(&before, ACCEPTS), "{after}");
}
