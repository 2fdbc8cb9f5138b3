//! The self-service web pages over HTTP against the real daemon: rendering
//! and labels, security headers, identical answers for every user name on
//! the request pages, the ResetPIN and change-PIN flows ending in a PIN that
//! works over RADIUS (radclient), CSRF refusals, rate limits and the field
//! case of 50 provision-code requests a minute.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use pinwheel_tests::{mobile_otc, Daemon, RadiusOutcome::*};

/// An HTTP answer of a page.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let rest = self
            .body
            .split(&marker)
            .nth(1)
            .unwrap_or_else(|| panic!("no hidden field {name} in:\n{}", self.body));
        rest.split('"').next().unwrap_or_default().to_string()
    }

    /// The body with the CSRF token blanked (it is per browser, not per user).
    fn without_token(&self) -> String {
        match self.body.split_once("name=\"csrf\" value=\"") {
            Some((head, rest)) => {
                let tail = rest.split_once('"').map(|x| x.1).unwrap_or_default();
                format!("{head}name=\"csrf\" value=\"\"{tail}")
            }
            None => self.body.clone(),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .build()
}

fn to_page(res: Result<ureq::Response, ureq::Error>) -> Page {
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let body = resp.into_string().expect("page body");
    Page {
        status,
        headers,
        body,
    }
}

/// A browser: keeps the CSRF cookie between requests.
struct Browser {
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(d: &Daemon) -> Browser {
        Browser {
            base: d.base_url(),
            cookie: None,
        }
    }

    fn get(&mut self, path: &str) -> Page {
        let mut req = agent().get(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        let page = to_page(req.call());
        if let Some(set) = page.header("set-cookie") {
            self.cookie = Some(set.split(';').next().unwrap_or_default().to_string());
        }
        page
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut req = agent().post(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        to_page(req.send_form(fields))
    }

    /// GETs `form_page`, then POSTs `fields` plus its CSRF token to `action`.
    fn submit(&mut self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(form_page);
        assert_eq!(page.status, 200, "{form_page}: {}", page.body);
        let token = page.hidden("csrf");
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }
}

fn pages_daemon(pages: &str) -> Daemon {
    let pages = pages.to_string();
    Daemon::start(move |c| {
        // Keys before the first table header belong to the harness's spool
        // `[[transport]]`: email only, so a user with just a phone has no transport.
        c.extra
            .push_str("address = \"email\"\n\n[pages]\norganisation = \"Example & Co\"\n");
        c.extra.push_str(&pages);
    })
}

/// A user without a transport (phone only, the spool takes email only), a locked one and a disabled one, besides `alice`.
fn add_users(d: &Daemon) {
    d.add_user("alice", "1234");
    d.add_user("bob", "1234");
    d.ctl_ok(&["user", "lock", "bob"]);
    d.ctl_ok(&[
        "user",
        "add",
        "carol",
        "--phone",
        "+15550100",
        "--pin",
        "1234",
    ]);
    d.add_user("dave", "1234");
    d.ctl_ok(&["user", "disable", "dave"]);
}

fn assert_security_headers(p: &Page) {
    let csp = p.header("content-security-policy").expect("CSP header");
    for part in [
        "default-src 'none'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part}");
    }
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(p.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(p.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(p.header("cache-control"), Some("no-store"));
}

#[test]
fn every_page_renders_with_labels_ids_and_security_headers() {
    let d = pages_daemon("");
    let mut b = Browser::new(&d);
    let cases: &[(&str, &[&str])] = &[
        (
            "/resetpin/provision",
            &[
                "id=\"username\"",
                "id=\"provision-button\"",
                ">Provision</button>",
            ],
        ),
        (
            "/resetpin",
            &[
                "id=\"username\"",
                "id=\"request-code-button\"",
                "Request Code",
            ],
        ),
        (
            "/resetpin/code",
            &["id=\"username\"", "id=\"code\"", "id=\"reset-button\""],
        ),
        (
            "/provision",
            &[
                "id=\"username\"",
                "id=\"code\"",
                "id=\"server-settings\"",
                "Open in app",
                "Get Server Settings",
            ],
        ),
        (
            "/userportal/changepin",
            &[
                "id=\"username\"",
                "id=\"otc-old\"",
                "id=\"otc-new1\"",
                "id=\"otc-new2\"",
            ],
        ),
    ];
    for (path, needles) in cases {
        let p = b.get(path);
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(p
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"));
        assert_security_headers(&p);
        assert!(p.body.contains("Pinwheel"), "{path}: product name");
        assert!(
            p.body.contains("Example &amp; Co") || p.body.contains("Example &#38; Co"),
            "{path}: organisation, escaped"
        );
        assert!(!p.body.contains("<script"), "{path}: no JavaScript");
        assert!(p.body.contains("/pages/pinwheel.css"), "{path}: stylesheet");
        for n in *needles {
            assert!(p.body.contains(n), "{path} lacks {n}:\n{}", p.body);
        }
        // Every input with an id has a label for it.
        for id in ["username", "code", "otc-old", "otc-new1", "otc-new2"] {
            if p.body.contains(&format!("id=\"{id}\"")) {
                assert!(
                    p.body.contains(&format!("<label for=\"{id}\">")),
                    "{path}: label of {id}"
                );
            }
        }
    }
    let cookie = b.cookie.clone().expect("a CSRF cookie was set");
    assert!(cookie.starts_with("pinwheel_csrf="), "{cookie}");
    let css = agent()
        .get(&d.url("/pages/pinwheel.css"))
        .call()
        .expect("stylesheet");
    assert_eq!(css.status(), 200);
    assert!(css.content_type().starts_with("text/css"));
}

#[test]
fn request_pages_answer_the_same_for_every_user_and_send_only_to_the_real_one() {
    let d = pages_daemon("requests_per_minute_per_address = 1000\n");
    add_users(&d);
    let mut b = Browser::new(&d);
    let users = ["alice", "nobody-at-all", "bob", "carol", "dave"];
    for (form, action) in [
        ("/resetpin/provision", "/resetpin/provision"),
        ("/resetpin", "/resetpin/request"),
    ] {
        let mut answers = Vec::new();
        for u in users {
            let start = Instant::now();
            let p = b.submit(form, action, &[("username", u)]);
            answers.push((u, p.status, p.without_token(), start.elapsed()));
            assert_security_headers(&p);
        }
        let (_, status, body, _) = &answers[0];
        assert_eq!(*status, 200, "{body}");
        for (u, s, bd, t) in &answers {
            assert_eq!(s, status, "{action} status for {u}");
            assert_eq!(bd, body, "{action} body for {u} differs from alice's");
            assert!(*t < Duration::from_secs(1), "{action} for {u} took {t:?}");
        }
    }
    // The codes went to alice only (the sends run in the background).
    let deadline = Instant::now() + Duration::from_secs(20);
    while (d.spool_for("alice", "provision-code").is_empty()
        || d.spool_for("alice", "reset-code").is_empty())
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.spool_for("alice", "provision-code").len(), 1);
    assert_eq!(d.spool_for("alice", "reset-code").len(), 1);
    thread::sleep(Duration::from_millis(500));
    // A lock is about logins: a locked user (bob) may still get a provision
    // code, but no reset code.
    for u in ["carol", "dave", "nobody-at-all"] {
        assert!(
            d.spool_for(u, "provision-code").is_empty(),
            "provision code sent to {u}"
        );
        assert!(
            d.spool_for(u, "reset-code").is_empty() && d.spool_for("bob", "reset-code").is_empty(),
            "reset code sent to {u}"
        );
    }
}

fn reset_code_of(d: &Daemon, user: &str, seen: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msgs = d.spool_for(user, "reset-code");
        if msgs.len() > seen {
            return msgs
                .last()
                .and_then(|m| m.body_value("Your PIN reset code is: "))
                .expect("reset code line");
        }
        assert!(Instant::now() < deadline, "no reset code for {user}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reset_flow_sends_a_new_pin_that_works_over_radius_and_no_code_leaks() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    let state = d.path("phone.json");
    d.provision_device(&state, "alice");
    let mut b = Browser::new(&d);

    // A wrong code burns the live one.
    let p = b.submit("/resetpin", "/resetpin/request", &[("username", "alice")]);
    assert!(p.body.contains("id=\"reset-button\""), "{}", p.body);
    let code = reset_code_of(&d, "alice", 0);
    let wrong = if code.starts_with('0') { "1" } else { "0" }.to_string() + &code[1..];
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", "alice"), ("code", &wrong)],
    );
    assert!(p.body.contains("PIN not reset"), "{}", p.body);
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", "alice"), ("code", &code)],
    );
    assert!(
        p.body.contains("PIN not reset"),
        "a burnt code must not work: {}",
        p.body
    );
    assert!(d.spool_for("alice", "pin").is_empty());

    // The right code gives a new PIN, sent over the transport, that works
    // (asked for once 30 s have passed since the last code was sent).
    thread::sleep(Duration::from_secs(31));
    b.submit("/resetpin", "/resetpin/request", &[("username", "alice")]);
    let code2 = reset_code_of(&d, "alice", 1);
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", "alice"), ("code", &code2)],
    );
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Your PIN has been reset"), "{}", p.body);
    let pins = d.spool_for("alice", "pin");
    assert_eq!(pins.len(), 1, "one new-PIN message");
    let pin = pins[0]
        .body_value("Your Pinwheel PIN is: ")
        .expect("PIN line");
    assert_eq!(d.auth("alice", &mobile_otc(&state, &pin, Some(1))), Accept);
    if pin != "1234" {
        assert_eq!(
            d.auth("alice", &mobile_otc(&state, "1234", Some(2))),
            Reject
        );
    }
    // Single use.
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", "alice"), ("code", &code2)],
    );
    assert!(p.body.contains("PIN not reset"), "{}", p.body);

    // No code or PIN in the log (URLs included).
    let log = d.log();
    for secret in [&code, &code2, &pin] {
        assert!(!log.contains(secret.as_str()), "log holds a secret:\n{log}");
    }
}

/// Asks for a reset code for `user`, then tries a wrong one (which burns
/// the live code, if any); both pages answer the same whatever happened.
fn request_then_wrong_code(b: &mut Browser, user: &str) {
    let p = b.submit("/resetpin", "/resetpin/request", &[("username", user)]);
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"reset-button\""), "{}", p.body);
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", user), ("code", "00000000")],
    );
    assert!(p.body.contains("PIN not reset"), "{}", p.body);
}

#[test]
fn burning_a_reset_code_does_not_lift_the_resend_limits() {
    let d = pages_daemon("reset_codes_per_hour = 1\n");
    d.add_user("alice", "1234");
    let mut b = Browser::new(&d);
    request_then_wrong_code(&mut b, "alice");
    reset_code_of(&d, "alice", 0);
    // Within 30 s of the last send: nothing more, even with the code burnt.
    for _ in 0..3 {
        request_then_wrong_code(&mut b, "alice");
    }
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.spool_for("alice", "reset-code").len(),
        1,
        "a second code within 30 s"
    );
    // After 30 s, the hourly cap (1 here) still holds.
    thread::sleep(Duration::from_secs(30));
    request_then_wrong_code(&mut b, "alice");
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.spool_for("alice", "reset-code").len(),
        1,
        "a code over [pages] reset_codes_per_hour"
    );
}

#[test]
fn reset_is_refused_for_locked_users() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    let mut b = Browser::new(&d);
    b.submit("/resetpin", "/resetpin/request", &[("username", "alice")]);
    let code = reset_code_of(&d, "alice", 0);
    d.ctl_ok(&["user", "lock", "alice"]);
    let p = b.submit(
        "/resetpin/code",
        "/resetpin/reset",
        &[("username", "alice"), ("code", &code)],
    );
    assert!(p.body.contains("PIN not reset"), "{}", p.body);
    assert!(d.spool_for("alice", "pin").is_empty());
}

/// The security string of a change-PIN page, position 1 first.
fn page_string(p: &Page) -> String {
    let row = p
        .body
        .split("<th scope=\"row\">Character</th>")
        .nth(1)
        .expect("character row");
    let row = row.split("</tr>").next().unwrap_or_default();
    row.split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap_or_default())
        .collect()
}

/// The OTC of `string` under `pin` (digit 0 names position 10).
fn otc(string: &str, pin: &str) -> String {
    let chars: Vec<char> = string.chars().collect();
    pin.bytes()
        .map(|d| chars[(usize::from(d - b'0') + 9) % 10])
        .collect()
}

fn change_pin(b: &mut Browser, user: &str, old: &str, new1: &str, new2: &str) -> Page {
    let form = b.get("/userportal/changepin");
    assert_eq!(form.status, 200);
    let string = page_string(&form);
    let mut digits: Vec<char> = string.chars().collect();
    digits.sort_unstable();
    assert_eq!(
        digits.iter().collect::<String>(),
        "0123456789",
        "distinct digits: {string}"
    );
    let (o, n1, n2) = (otc(&string, old), otc(&string, new1), otc(&string, new2));
    b.post(
        "/userportal/changepin",
        &[
            ("csrf", &form.hidden("csrf")),
            ("form", &form.hidden("form")),
            ("username", user),
            ("otc_old", &o),
            ("otc_new1", &n1),
            ("otc_new2", &n2),
        ],
    )
}

#[test]
fn changepin_sets_a_new_pin_that_works_over_radius() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    let state = d.path("phone.json");
    d.provision_device(&state, "alice");
    let mut b = Browser::new(&d);

    // Every failure shows the same page.
    let wrong_old = change_pin(&mut b, "alice", "9999", "5678", "5678");
    let mismatch = change_pin(&mut b, "alice", "1234", "5678", "5679");
    let unknown = change_pin(&mut b, "nobody", "1234", "5678", "5678");
    for p in [&wrong_old, &mismatch, &unknown] {
        assert_eq!(p.status, 200);
        assert!(p.body.contains("PIN not changed"), "{}", p.body);
        assert_eq!(p.body, wrong_old.body);
    }
    // A form is single use.
    let form = b.get("/userportal/changepin");
    let string = page_string(&form);
    let fields = [
        ("csrf", form.hidden("csrf")),
        ("form", form.hidden("form")),
        ("username", "alice".to_string()),
        ("otc_old", otc(&string, "1234")),
        ("otc_new1", otc(&string, "5678")),
        ("otc_new2", otc(&string, "5678")),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ok = b.post("/userportal/changepin", &fields);
    assert!(ok.body.contains("Your PIN has been changed"), "{}", ok.body);
    let again = b.post("/userportal/changepin", &fields);
    assert!(again.body.contains("PIN not changed"), "{}", again.body);

    assert_eq!(
        d.auth("alice", &mobile_otc(&state, "5678", Some(1))),
        Accept
    );
    assert_eq!(
        d.auth("alice", &mobile_otc(&state, "1234", Some(2))),
        Reject
    );
}

#[test]
fn changepin_wrong_old_otcs_lock_the_user() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    let mut b = Browser::new(&d);
    for _ in 0..5 {
        change_pin(&mut b, "alice", "9999", "5678", "5678");
    }
    // Locked now: even the right old OTC is refused.
    let p = change_pin(&mut b, "alice", "1234", "5678", "5678");
    assert!(p.body.contains("PIN not changed"), "{}", p.body);
    let show = d.ctl_ok(&["user", "show", "alice"]);
    assert!(show.to_lowercase().contains("lock"), "{show}");
}

#[test]
fn forms_without_the_right_csrf_token_are_refused() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    let mut b = Browser::new(&d);
    let page = b.get("/resetpin/provision");
    let token = page.hidden("csrf");
    // Missing field.
    let p = b.post("/resetpin/provision", &[("username", "alice")]);
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("security token"), "{}", p.body);
    // Wrong field.
    let p = b.post(
        "/resetpin/provision",
        &[("csrf", "x"), ("username", "alice")],
    );
    assert_eq!(p.status, 403);
    // Right field, no cookie.
    let bare = Browser {
        base: d.base_url(),
        cookie: None,
    };
    let p = bare.post(
        "/resetpin/request",
        &[("csrf", &token), ("username", "alice")],
    );
    assert_eq!(p.status, 403);
    // A cookie this server did not sign, repeated in the field.
    let forged = Browser {
        base: d.base_url(),
        cookie: Some("pinwheel_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
    };
    let p = forged.post(
        "/userportal/changepin",
        &[
            ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ("username", "alice"),
        ],
    );
    assert_eq!(p.status, 403);
    assert_security_headers(&p);
    // The right pair works.
    let p = b.post(
        "/resetpin/provision",
        &[("csrf", &token), ("username", "alice")],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    thread::sleep(Duration::from_millis(300));
    assert!(d.spool_for("alice", "provision-code").len() <= 1);
}

#[test]
fn rate_limits_answer_429_per_user_name_and_per_address() {
    let d =
        pages_daemon("requests_per_minute_per_user = 3\nrequests_per_minute_per_address = 12\n");
    let mut b = Browser::new(&d);
    let token = b.get("/resetpin").hidden("csrf"); // 1 request from this address
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let p = b.post(
            "/resetpin/request",
            &[("csrf", &token), ("username", "someone")],
        );
        statuses.push(p.status);
        if p.status == 429 {
            let retry: u64 = p
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_security_headers(&p);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429], "per user name");
    // Another user name still gets through until the address limit (12).
    let mut more = Vec::new();
    for i in 0..8 {
        let name = format!("user{i}");
        more.push(
            b.post(
                "/resetpin/request",
                &[("csrf", &token), ("username", &name)],
            )
            .status,
        );
    }
    assert_eq!(
        more,
        [200, 200, 200, 200, 200, 200, 200, 429],
        "per address"
    );
    assert_eq!(b.get("/resetpin").status, 429);
}

/// Median of `times`.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

#[test]
fn fifty_provision_requests_a_minute_answer_alike_and_leave_one_live_code() {
    let d = pages_daemon(
        "requests_per_minute_per_address = 1000\nrequests_per_minute_per_user = 100\n",
    );
    d.add_user("alice", "1234");
    d.ctl_ok(&[
        "user",
        "add",
        "carol",
        "--phone",
        "+15550100",
        "--pin",
        "1234",
    ]);
    let mut b = Browser::new(&d);
    let token = b.get("/resetpin/provision").hidden("csrf");
    let mut first: Option<(u16, String)> = None;
    let mut medians = Vec::new();
    for user in ["alice", "nobody-at-all", "carol"] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let p = b.post(
                "/resetpin/provision",
                &[("csrf", &token), ("username", user)],
            );
            times.push(start.elapsed());
            let got = (p.status, p.body.clone());
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(&got, f, "answer for {user} differs"),
            }
        }
        medians.push((user, median(&mut times)));
    }
    assert_eq!(first.map(|f| f.0), Some(200));
    let fastest = medians.iter().map(|m| m.1).min().unwrap_or_default();
    let slowest = medians.iter().map(|m| m.1).max().unwrap_or_default();
    eprintln!("median latency per user: {medians:?}");
    assert!(
        slowest <= fastest * 3 + Duration::from_millis(20),
        "latency differs by user: {medians:?}"
    );
    // `requests_per_hour` (5) codes at most went out, and only the last one is live.
    thread::sleep(Duration::from_secs(1));
    let msgs = d.spool_for("alice", "provision-code");
    assert!(
        !msgs.is_empty() && msgs.len() <= 5,
        "{} messages",
        msgs.len()
    );
    assert!(d.spool_for("carol", "provision-code").is_empty());
    assert!(d.spool_for("nobody-at-all", "provision-code").is_empty());
    if msgs.len() >= 2 {
        let older = msgs[msgs.len() - 2].provision_code().expect("code");
        let r = d.post(
            "/api/v1/provision",
            &serde_json::json!({"username": "alice", "code": older, "device": {"name": "x"}}),
            None,
        );
        assert_eq!(r.status, 403, "an earlier code must be dead: {}", r.body);
    }
    let state: &Path = &d.path("phone.json");
    let code = d.provision_send("alice");
    assert!(d.mobile_provision(state, "alice", &code).success());
}

#[test]
fn provision_landing_shows_settings_and_qr_without_spending_the_code() {
    let d = pages_daemon("");
    d.add_user("alice", "1234");
    d.add_user("erin", "1234");
    d.ctl_ok(&["user", "set-mode", "erin", "oath"]);
    let mut b = Browser::new(&d);

    // Strings mode: the settings page spends nothing, the page redeem refuses.
    let code = d.provision_send("alice");
    let p = b.submit(
        "/provision",
        "/provision/settings",
        &[("username", "alice"), ("code", &code)],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert_security_headers(&p);
    assert!(p.body.contains(&d.base_url()), "server address: {}", p.body);
    let qr = p.body.split("id=\"qr\"").nth(1).expect("#qr");
    assert!(qr.contains("<svg"), "QR as SVG inside #qr");
    let server = d.base_url().replace(':', "%3A").replace('/', "%2F");
    let link = format!("pinwheel://provision?server={server}&amp;user=alice&amp;code={code}");
    assert!(
        p.body.contains(&link) || p.body.contains(&link.replace("&amp;", "&#38;")),
        "deep link {link} in:\n{}",
        p.body
    );
    let p = b.submit(
        "/provision",
        "/provision/redeem",
        &[("username", "alice"), ("code", &code)],
    );
    assert_eq!(p.status, 403);
    assert!(p.body.contains("Provision Failure"), "{}", p.body);
    let phone = d.path("phone.json");
    let out = d.mobile_provision(&phone, "alice", &code);
    assert!(
        out.success(),
        "the code is still live after the pages: {out}"
    );

    // OATH mode: redeeming on the page shows the otpauth QR once.
    let code = d.provision_send("erin");
    let p = b.submit(
        "/provision",
        "/provision/redeem",
        &[("username", "erin"), ("code", &code)],
    );
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Device Provisioned"), "{}", p.body);
    let qr = p.body.split("id=\"qr\"").nth(1).expect("#qr");
    assert!(qr.contains("<svg"));
    assert!(
        !p.body.contains("otpauth://"),
        "the key URI is only in the QR"
    );
    let again = b.submit(
        "/provision",
        "/provision/redeem",
        &[("username", "erin"), ("code", &code)],
    );
    assert_eq!(again.status, 403, "a code is single use");
    assert!(!d.log().contains(&code), "no code in the log");
}
