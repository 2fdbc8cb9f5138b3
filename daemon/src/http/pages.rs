//! Web pages. For now only the Provision URL landing page (`GET /provision`),
//! so the link in every provision message leads somewhere useful; the full
//! ResetPIN pages come later.
//!
//! The Provision URL carries the user name and code in its fragment
//! (`#user=..&code=..`), which browsers never send to the server: this page
//! never sees, logs or spends the code. It needs no JavaScript.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::daemon::App;

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /provision`: how to finish provisioning with the code from the message.
pub async fn provision_landing(State(app): State<Arc<App>>) -> Response {
    let server = escape(&app.config.server.public_url);
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pinwheel - Mobile Provisioning</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}code{{font-size:1.1em}}</style>
</head>
<body>
<main>
<h1>Provision your mobile device</h1>
<p>Your Provision URL carries your user name and Mobile Provision Code after the <code>#</code> sign. That part never leaves your device, so this page cannot fill them in for you.</p>
<ol>
<li>Open the Pinwheel mobile app and choose <strong>Re-provision</strong>.</li>
<li>Server settings: <code>{server}</code></li>
<li>Enter your user name and the Mobile Provision Code from your message.</li>
</ol>
<p>You should see <q>Provisioning. Please wait...</q> and then <q>Device Provisioned</q>. The code works once, within its lifetime; if you see <q>Provision Failure</q>, ask for a new code.</p>
</main>
</body>
</html>
"#
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
