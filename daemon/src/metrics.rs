//! Process-wide counters and histograms for `GET /metrics` (Prometheus text
//! exposition format 0.0.4), and the RADIUS loop's heartbeat the watchdog
//! reads.
//!
//! Everything on a request's path is a relaxed atomic add: no lock, no
//! allocation. Plugin failures (rare) are kept in a small map behind a
//! mutex, keyed by plugin name and failure kind. Nothing here holds a user
//! name, code or secret: only counts, durations and configured names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Where a decision came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A RADIUS Access-Request.
    Radius,
    /// The agent APIs (JSON and the seed product's XML).
    Agent,
    /// A web page.
    Page,
}

impl Source {
    const ALL: [Source; 3] = [Source::Radius, Source::Agent, Source::Page];

    fn label(self) -> &'static str {
        match self {
            Source::Radius => "radius",
            Source::Agent => "agent",
            Source::Page => "page",
        }
    }
}

/// How a request ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (Access-Accept, PASS, 2xx).
    Accept,
    /// Rejected (Access-Reject, FAIL, 4xx).
    Reject,
    /// Access-Challenge (first leg of a two-stage login).
    Challenge,
    /// Dropped without an answer.
    Drop,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Accept,
        Outcome::Reject,
        Outcome::Challenge,
        Outcome::Drop,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
            Outcome::Challenge => "challenge",
            Outcome::Drop => "drop",
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram of durations: one atomic per bucket (not
/// cumulative; summed when rendered), the count and the sum in nanoseconds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        use std::fmt::Write;
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The daemon's metrics (one per process: [`METRICS`]).
pub struct Metrics {
    requests: [[AtomicU64; 4]; 3],
    /// RADIUS decision latency: from the datagram's arrival to the reply
    /// being handed to the socket.
    pub radius_duration: Histogram,
    /// Duration of each store commit (decision batches and group commits).
    pub store_commit: Histogram,
    plugin_failures: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// Bumped by the RADIUS receive loop at least every
    /// [`HEARTBEAT_PERIOD`]: milliseconds since [`Metrics::started`] of the
    /// last bump.
    radius_heartbeat_ms: AtomicU64,
    started: std::sync::OnceLock<std::time::Instant>,
}

/// How often the RADIUS receive loop bumps its heartbeat while idle.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(250);

/// The process's metrics.
pub static METRICS: Metrics = Metrics {
    requests: [const { [const { AtomicU64::new(0) }; 4] }; 3],
    radius_duration: Histogram::new(),
    store_commit: Histogram::new(),
    plugin_failures: Mutex::new(std::collections::BTreeMap::new()),
    radius_heartbeat_ms: AtomicU64::new(0),
    started: std::sync::OnceLock::new(),
};

impl Metrics {
    /// Counts one request of `source` that ended as `outcome`.
    pub fn request(&self, source: Source, outcome: Outcome) {
        self.requests[source as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `source` that ended as `outcome` so far.
    pub fn requests(&self, source: Source, outcome: Outcome) -> u64 {
        self.requests[source as usize][outcome as usize].load(Ordering::Relaxed)
    }

    /// Counts one failed call of plugin `plugin`; `kind` is one of
    /// `plugin_error`, `panic`, `timeout`, `busy`, `host`.
    pub fn plugin_failure(&self, plugin: &str, kind: &'static str) {
        let mut map = self
            .plugin_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Plugin names come from the config: bounded by it.
        *map.entry((plugin.to_string(), kind)).or_insert(0) += 1;
    }

    fn now_ms(&self) -> u64 {
        let started = self.started.get_or_init(std::time::Instant::now);
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Called by the RADIUS receive loop: it is alive now.
    pub fn radius_heartbeat(&self) {
        // Stored one higher, so that 0 means "never".
        let now = self.now_ms().saturating_add(1);
        self.radius_heartbeat_ms.store(now, Ordering::Relaxed);
    }

    /// How long ago the RADIUS receive loop last showed it was alive, or
    /// `None` if it never has.
    pub fn radius_heartbeat_age(&self) -> Option<Duration> {
        let last = self.radius_heartbeat_ms.load(Ordering::Relaxed);
        if self.started.get().is_none() || last == 0 {
            return None;
        }
        Some(Duration::from_millis(
            self.now_ms().saturating_sub(last.saturating_sub(1)),
        ))
    }

    /// The whole exposition text (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP pinwheel_requests_total Authentication requests by source and result.\n\
             # TYPE pinwheel_requests_total counter\n",
        );
        for source in Source::ALL {
            for outcome in Outcome::ALL {
                let _ = writeln!(
                    out,
                    "pinwheel_requests_total{{source=\"{}\",result=\"{}\"}} {}",
                    source.label(),
                    outcome.label(),
                    self.requests(source, outcome)
                );
            }
        }
        out.push_str(
            "# HELP pinwheel_request_duration_seconds RADIUS decision latency, arrival to reply.\n\
             # TYPE pinwheel_request_duration_seconds histogram\n",
        );
        self.radius_duration.render(
            &mut out,
            "pinwheel_request_duration_seconds",
            "source=\"radius\"",
        );
        out.push_str(
            "# HELP pinwheel_plugin_failures_total Failed plugin calls by plugin and kind.\n\
             # TYPE pinwheel_plugin_failures_total counter\n",
        );
        {
            let map = self
                .plugin_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for ((plugin, kind), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "pinwheel_plugin_failures_total{{plugin=\"{}\",kind=\"{kind}\"}} {n}",
                    escape_label(plugin)
                );
            }
        }
        out.push_str(
            "# HELP pinwheel_store_commit_duration_seconds Duration of store commits.\n\
             # TYPE pinwheel_store_commit_duration_seconds histogram\n",
        );
        self.store_commit
            .render(&mut out, "pinwheel_store_commit_duration_seconds", "");
        out
    }
}

/// `GET /metrics`: the exposition text for a peer inside `[http]
/// metrics_from` (default loopback), 403 for anyone else. The counts reveal
/// traffic, never a secret.
pub async fn serve(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<crate::daemon::App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        v4 => v4,
    };
    if !app.config.http.metrics_from.iter().any(|n| n.contains(&ip)) {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served only to [http] metrics_from\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.render(),
    )
        .into_response()
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.025\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"2.5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
    }

    #[test]
    fn render_names_every_series_and_escapes_labels() {
        let m = Metrics {
            requests: [const { [const { AtomicU64::new(0) }; 4] }; 3],
            radius_duration: Histogram::new(),
            store_commit: Histogram::new(),
            plugin_failures: Mutex::new(Default::default()),
            radius_heartbeat_ms: AtomicU64::new(0),
            started: std::sync::OnceLock::new(),
        };
        m.request(Source::Radius, Outcome::Accept);
        m.request(Source::Radius, Outcome::Accept);
        m.plugin_failure("we\"ird", "timeout");
        let text = m.render();
        assert!(text.contains("pinwheel_requests_total{source=\"radius\",result=\"accept\"} 2\n"));
        assert!(text.contains("pinwheel_requests_total{source=\"agent\",result=\"drop\"} 0\n"));
        assert!(text
            .contains("pinwheel_plugin_failures_total{plugin=\"we\\\"ird\",kind=\"timeout\"} 1\n"));
        assert!(text.contains("pinwheel_store_commit_duration_seconds_count 0\n"));
        assert!(text.contains(
            "pinwheel_request_duration_seconds_bucket{source=\"radius\",le=\"+Inf\"} 0\n"
        ));
        assert_eq!(m.radius_heartbeat_age(), None);
        m.radius_heartbeat();
        assert!(m.radius_heartbeat_age().is_some());
    }
}
