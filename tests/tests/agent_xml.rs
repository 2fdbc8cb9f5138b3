//! Agent XML compatibility, driven over HTTP against the real daemon:
//! `POST /CONTEXT/AgentXML` (`ping`, `login`, `provision`,
//! `SecurityStrings`), `GET /CONTEXT/TokenIndex` and
//! `GET /ssdserver/getServerDetails`, for each context (`pinsafe`, `sentry`,
//! `proxy`). Every answer to a bad body is a `SASResponse`, never a 500 or a
//! hang; a DOCTYPE (billion laughs) is refused at once; a refused agent
//! spends no code.

use std::time::{Duration, Instant};

use pinwheel_tests::{alter_otc, http_get, mobile_otc, Daemon, HttpReply};

const AGENT_SECRET: &str = "portal-secret-0123456789abcdef";
const CONTEXTS: [&str; 3] = ["pinsafe", "sentry", "proxy"];

fn xml_daemon(address: &str) -> Daemon {
    Daemon::start(|c| {
        c.extra = format!(
            "[[agent]]\nname = \"portal\"\naddress = \"{address}\"\nsecret = \"{AGENT_SECRET}\"\n"
        )
    })
}

/// `POST url` with a raw body, whatever the status.
fn post_raw(url: &str, body: &[u8]) -> HttpReply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let resp = match agent
        .post(url)
        .set("Content-Type", "text/xml; charset=utf-8")
        .send_bytes(body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    HttpReply {
        status: resp.status(),
        content_type: resp.content_type().to_string(),
        body: resp.into_string().expect("read body"),
    }
}

/// Escapes a value for an XML request.
fn esc(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A `SASRequest` with these child elements.
fn request(fields: &[(&str, &str)]) -> String {
    let mut body = String::from("<?xml version=\"1.0\" ?>\n<SASRequest>\n<Version>3.4</Version>\n");
    for (name, value) in fields {
        body.push_str(&format!("<{name}>{}</{name}>\n", esc(value)));
    }
    body.push_str("</SASRequest>\n");
    body
}

/// A parsed `SASResponse`: the raw document plus typed access.
#[derive(Debug)]
struct Sas {
    status: u16,
    body: String,
}

impl Sas {
    /// The unescaped text of `<name>`, if the element is there.
    fn get(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = start + self.body[start..].find(&close)?;
        Some(
            self.body[start..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        )
    }

    fn result(&self) -> String {
        self.get("Result").unwrap_or_default()
    }

    fn error(&self) -> String {
        self.get("Error").unwrap_or_default()
    }

    /// `(Result, Error)`.
    fn outcome(&self) -> (String, String) {
        (self.result(), self.error())
    }
}

fn send_to(d: &Daemon, context: &str, body: &[u8]) -> Sas {
    let r = post_raw(&d.url(&format!("/{context}/AgentXML")), body);
    assert!(
        r.content_type.starts_with("text/xml"),
        "content type {} for {r:?}",
        r.content_type
    );
    assert!(
        r.body.contains("<SASResponse>") && r.body.contains("</SASResponse>"),
        "not a SASResponse: {r:?}"
    );
    Sas {
        status: r.status,
        body: r.body,
    }
}

fn send(d: &Daemon, fields: &[(&str, &str)]) -> Sas {
    send_to(d, "pinsafe", request(fields).as_bytes())
}

fn pass() -> (String, String) {
    ("PASS".to_string(), String::new())
}

fn fail(code: &str) -> (String, String) {
    ("FAIL".to_string(), code.to_string())
}

fn login(d: &Daemon, user: &str, otc: &str, secret: &str) -> Sas {
    send(
        d,
        &[
            ("Secret", secret),
            ("Action", "login"),
            ("Username", user),
            ("OTC", otc),
        ],
    )
}

/// The OTC for `pin` from security string `s` followed by the 2-digit index.
fn otc_of(s: &str, pin: &str, index: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut code: String = pin
        .chars()
        .map(|d| {
            let position = d.to_digit(10).expect("PIN digit");
            let position = if position == 0 { 10 } else { position } as usize;
            chars[position - 1]
        })
        .collect();
    code.push_str(&format!("{index:02}"));
    code
}

/// The entries of a `SecurityStrings` answer: 100, entry 0 empty.
fn strings_of(sas: &Sas) -> Vec<String> {
    let joined = sas.get("SecurityStrings").expect("SecurityStrings element");
    let entries: Vec<String> = joined.split(';').map(str::to_string).collect();
    assert_eq!(entries.len(), 100, "{joined}");
    assert_eq!(entries[0], "", "index 00 is never a string");
    assert!(entries[1..].iter().all(|s| s.len() == 10), "{joined}");
    entries
}

fn token_index(d: &Daemon, context: &str, user: &str) -> HttpReply {
    http_get(&d.url(&format!("/{context}/TokenIndex?username={user}"))).expect("GET TokenIndex")
}

#[test]
fn ping_answers_under_every_context_and_echoes_the_request_id_escaped() {
    let d = xml_daemon("127.0.0.1/32");
    for context in CONTEXTS {
        let body = request(&[("Action", "ping"), ("RequestID", "id-<&>-1")]);
        let sas = send_to(&d, context, body.as_bytes());
        assert_eq!(sas.status, 200, "{sas:?}");
        assert_eq!(sas.outcome(), pass(), "{context}: {sas:?}");
        assert!(
            sas.body
                .contains("<RequestID>id-&lt;&amp;&gt;-1</RequestID>"),
            "{sas:?}"
        );
        assert_eq!(sas.get("RequestID").as_deref(), Some("id-<&>-1"));
        assert!(sas.get("Version").is_some());
    }
    // ping needs no secret, and a wrong one does not matter.
    let sas = send(&d, &[("Action", "ping"), ("Secret", "whatever")]);
    assert_eq!(sas.outcome(), pass());
    // A request without RequestID gets an empty one.
    assert_eq!(
        send(&d, &[("Action", "ping")]).get("RequestID").as_deref(),
        Some("")
    );
    // Unknown and missing actions are refused by name.
    let sas = send(&d, &[("Action", "deleteEverything"), ("RequestID", "r9")]);
    assert_eq!(sas.outcome(), fail("AGENT_ERROR_UNKNOWN_ACTION"), "{sas:?}");
    assert_eq!(sas.get("RequestID").as_deref(), Some("r9"));
    assert!(!sas.body.contains("deleteEverything"), "{sas:?}");
    assert_eq!(send(&d, &[]).outcome(), fail("AGENT_ERROR_BAD_REQUEST"));
}

#[test]
fn login_passes_a_right_code_once_and_fails_a_wrong_one() {
    let d = xml_daemon("127.0.0.1/32");
    d.add_user("alice", "6284");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");

    let code = mobile_otc(&phone, "6284", Some(1));
    let sas = send(
        &d,
        &[
            ("Secret", AGENT_SECRET),
            ("Action", "login"),
            ("Username", "alice"),
            ("OTC", &code),
            ("RequestID", "login-1"),
        ],
    );
    assert_eq!(sas.outcome(), pass(), "{sas:?}");
    assert_eq!(sas.get("RequestID").as_deref(), Some("login-1"));
    assert_eq!(
        login(&d, "alice", &code, AGENT_SECRET).outcome(),
        fail("AGENT_ERROR_BAD_OTC"),
        "replay"
    );
    let wrong = alter_otc(&mobile_otc(&phone, "6284", Some(2)));
    assert_eq!(
        login(&d, "alice", &wrong, AGENT_SECRET).outcome(),
        fail("AGENT_ERROR_BAD_OTC")
    );
    assert_eq!(
        login(
            &d,
            "nobody",
            &mobile_otc(&phone, "6284", Some(3)),
            AGENT_SECRET
        )
        .outcome(),
        fail("AGENT_ERROR_BAD_OTC"),
        "unknown user"
    );
    // The code may come in <Password> too; the other contexts decide the same.
    let code = mobile_otc(&phone, "6284", Some(4));
    let body = request(&[
        ("Secret", AGENT_SECRET),
        ("Action", "login"),
        ("Username", "alice"),
        ("Password", &code),
    ]);
    assert_eq!(send_to(&d, "sentry", body.as_bytes()).outcome(), pass());
    d.add_user("bob", "1357");
    assert_eq!(
        login(&d, "bob", "135701", AGENT_SECRET).outcome(),
        fail("AGENT_ERROR_NO_SECURITY_STRINGS")
    );

    // Decisions are audited with the agent as source, without secrets.
    let rows = d.ctl_ok(&["--json", "audit", "--user", "alice"]);
    assert!(rows.contains("agent:portal@127.0.0.1:"), "{rows}");
    assert!(
        !rows.contains(AGENT_SECRET) && !rows.contains(&code),
        "{rows}"
    );
    assert!(!d.log().contains(AGENT_SECRET) && !d.log().contains(&code));
}

#[test]
fn wrong_secret_or_address_is_refused_without_spending_the_code() {
    let d = xml_daemon("127.0.0.1/32");
    d.add_user("alice", "6284");
    let phone = d.path("alice.json");
    d.provision_device(&phone, "alice");
    let code = mobile_otc(&phone, "6284", Some(1));

    let sas = login(&d, "alice", &code, "not-the-secret-at-all-000");
    assert_eq!(sas.status, 200);
    assert_eq!(sas.outcome(), fail("AGENT_ERROR_AGENT_ACCESS"), "{sas:?}");
    let no_secret = send(
        &d,
        &[("Action", "login"), ("Username", "alice"), ("OTC", &code)],
    );
    assert_eq!(no_secret.outcome(), fail("AGENT_ERROR_AGENT_ACCESS"));
    assert_eq!(
        token_index(&d, "pinsafe", "alice").body,
        "01",
        "nothing spent"
    );
    assert_eq!(login(&d, "alice", &code, AGENT_SECRET).outcome(), pass());

    let rows = d.ctl_ok(&["--json", "audit"]);
    assert!(rows.contains("bad_agent_secret"), "{rows}");
    assert!(rows.contains("no_agent_secret"), "{rows}");
    assert!(!rows.contains("not-the-secret"), "{rows}");

    // The right secret from outside the agent's network.
    let elsewhere = xml_daemon("10.0.0.0/8");
    elsewhere.add_user("carol", "4321");
    let phone = elsewhere.path("carol.json");
    elsewhere.provision_device(&phone, "carol");
    let code = mobile_otc(&phone, "4321", Some(1));
    assert_eq!(
        login(&elsewhere, "carol", &code, AGENT_SECRET).outcome(),
        fail("AGENT_ERROR_AGENT_ACCESS")
    );
    let rows = elsewhere.ctl_ok(&["--json", "audit"]);
    assert!(rows.contains("address_not_allowed"), "{rows}");
    // The code was not looked at: it still works over RADIUS.
    assert_eq!(
        token_index(&elsewhere, "pinsafe", "carol").body,
        "01",
        "nothing spent"
    );
    assert_eq!(
        elsewhere.auth("carol", &code),
        pinwheel_tests::RadiusOutcome::Accept
    );
}

#[test]
fn malformed_bodies_get_a_sas_response_error() {
    let d = xml_daemon("127.0.0.1/32");
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"not xml at all",
        b"<SASRequest><Action>ping</Action>",
        b"<SASRequest><Action>ping</Username></SASRequest>",
        b"<Other><Action>ping</Action></Other>",
        b"<SASRequest><Action>ping</Action><Username>a & b</Username></SASRequest>",
        b"<SASRequest><Action>ping</Action><Username>&undefined;</Username></SASRequest>",
        b"<SASRequest><Action>ping</Action><Username>\xff\xfe</Username></SASRequest>",
        b"<SASRequest><Action><b>ping</b></Action></SASRequest>",
        b"<SASRequest><Action>ping</Action><Action>login</Action></SASRequest>",
        b"\x00\x01\x02",
    ];
    for body in bodies {
        let sas = send_to(&d, "pinsafe", body);
        assert_eq!(sas.status, 200, "{body:?}: {sas:?}");
        assert_eq!(
            sas.outcome(),
            fail("AGENT_ERROR_BAD_REQUEST"),
            "{body:?}: {sas:?}"
        );
        assert!(sas.get("Message").is_some_and(|m| !m.is_empty()), "{sas:?}");
    }
    // Too long a field, and too large a body (http.max_body_bytes = 16 KiB).
    let long = request(&[("Action", "ping"), ("Username", &"u".repeat(300))]);
    assert_eq!(
        send_to(&d, "proxy", long.as_bytes()).outcome(),
        fail("AGENT_ERROR_BAD_REQUEST")
    );
    let huge = request(&[("Action", "ping"), ("Other", &"x".repeat(20_000))]);
    let sas = send_to(&d, "pinsafe", huge.as_bytes());
    assert_eq!(sas.status, 413, "{sas:?}");
    assert_eq!(sas.outcome(), fail("AGENT_ERROR_BAD_REQUEST"));
    // The daemon is fine afterwards.
    assert_eq!(send(&d, &[("Action", "ping")]).outcome(), pass());
}

#[test]
fn billion_laughs_is_refused_at_once() {
    let d = xml_daemon("127.0.0.1/32");
    let mut body =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    body.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..10 {
        let prev = format!("&lol{};", i - 1);
        body.push_str(&format!(" <!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
    }
    body.push_str("]>\n<SASRequest><Action>login</Action><Secret>");
    body.push_str(AGENT_SECRET);
    body.push_str("</Secret><Username>&lol9;</Username><OTC>&lol9;</OTC><RequestID>laughs</RequestID></SASRequest>\n");
    let start = Instant::now();
    let sas = send_to(&d, "sentry", body.as_bytes());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(sas.status, 200);
    assert_eq!(sas.outcome(), fail("AGENT_ERROR_BAD_REQUEST"), "{sas:?}");
    assert!(
        sas.get("Message").unwrap_or_default().contains("DOCTYPE"),
        "{sas:?}"
    );
    assert!(!sas.body.contains("lollol"), "{sas:?}");

    // An entity used without a declaration is refused too, never expanded.
    let sas = send_to(
        &d,
        "proxy",
        b"<SASRequest><Action>ping</Action><RequestID>&lol9;</RequestID></SASRequest>",
    );
    assert_eq!(sas.outcome(), fail("AGENT_ERROR_BAD_REQUEST"), "{sas:?}");
    assert!(http_get(&d.url("/healthz")).unwrap().status == 200);
}

#[test]
fn provision_and_security_strings_work_over_login() {
    let d = xml_daemon("127.0.0.1/32");
    d.add_user("dave", "2580");
    let code = d.provision_send("dave");

    let sas = send(
        &d,
        &[
            ("Action", "provision"),
            ("Username", "dave"),
            ("ProvisionCode", &code),
            ("RequestID", "prov-1"),
        ],
    );
    assert_eq!(sas.outcome(), pass(), "{sas:?}");
    assert_eq!(sas.get("RequestID").as_deref(), Some("prov-1"));
    let token = sas.get("Id").expect("Id (device token)");
    assert!(!token.is_empty());
    let first = strings_of(&sas);
    assert!(!d.log().contains(&token) && !d.log().contains(&code));

    assert_eq!(token_index(&d, "pinsafe", "dave").body, "01");
    let otc = otc_of(&first[1], "2580", 1);
    assert_eq!(login(&d, "dave", &otc, AGENT_SECRET).outcome(), pass());
    for context in CONTEXTS {
        let r = token_index(&d, context, "dave");
        assert_eq!((r.status, r.body.as_str()), (200, "02"), "{context}: {r:?}");
        assert!(r.content_type.starts_with("text/plain"), "{r:?}");
    }
    let otc = otc_of(&first[7], "2580", 7);
    assert_eq!(login(&d, "dave", &otc, AGENT_SECRET).outcome(), pass());
    assert_eq!(
        token_index(&d, "sentry", "dave").body,
        "02",
        "lowest unused"
    );

    // The same code again, a made-up code, an unknown user: PROVISION_FAILURE.
    let again = send(
        &d,
        &[
            ("Action", "provision"),
            ("Username", "dave"),
            ("ProvisionCode", &code),
        ],
    );
    assert_eq!(again.outcome(), fail("PROVISION_FAILURE"));
    assert!(again.get("Id").is_none() && again.get("SecurityStrings").is_none());
    let nobody = send(
        &d,
        &[
            ("Action", "provision"),
            ("Username", "nobody"),
            ("ProvisionCode", "0123456789"),
        ],
    );
    assert_eq!(nobody.outcome(), fail("PROVISION_FAILURE"));

    // A new batch over SecurityStrings: old strings stop working, new ones work.
    let sas = send_to(
        &d,
        "proxy",
        request(&[
            ("Action", "SecurityStrings"),
            ("Id", &token),
            ("RequestID", "ss"),
        ])
        .as_bytes(),
    );
    assert_eq!(sas.outcome(), pass(), "{sas:?}");
    let second = strings_of(&sas);
    assert_ne!(first, second);
    assert_eq!(token_index(&d, "pinsafe", "dave").body, "01", "fresh batch");
    let old = otc_of(&first[3], "2580", 3);
    let new = otc_of(&second[3], "2580", 3);
    if old != new {
        assert_eq!(
            login(&d, "dave", &old, AGENT_SECRET).outcome(),
            fail("AGENT_ERROR_BAD_OTC")
        );
    }
    let new = otc_of(&second[4], "2580", 4);
    assert_eq!(login(&d, "dave", &new, AGENT_SECRET).outcome(), pass());

    let bad = send(&d, &[("Action", "SecurityStrings"), ("Id", "not-a-token")]);
    assert_eq!(bad.outcome(), fail("PROVISION_FAILURE"));
    assert!(bad.get("SecurityStrings").is_none());

    // A second provision revokes the first token.
    let code = d.provision_send("dave");
    let sas = send(
        &d,
        &[
            ("Action", "provision"),
            ("Username", "dave"),
            ("ProvisionCode", &code),
        ],
    );
    assert_eq!(sas.outcome(), pass());
    let stale = send(&d, &[("Action", "SecurityStrings"), ("Id", &token)]);
    assert_eq!(stale.outcome(), fail("PROVISION_FAILURE"));
}

#[test]
fn token_index_does_not_tell_who_exists() {
    let d = xml_daemon("127.0.0.1/32");
    d.add_user("erin", "1111");
    for user in ["erin", "nobody-at-all"] {
        for context in CONTEXTS {
            let r = token_index(&d, context, user);
            assert_eq!((r.status, r.body.as_str()), (200, "01"), "{user} {context}");
        }
    }
    let r = http_get(&d.url("/pinsafe/TokenIndex")).unwrap();
    assert_eq!(r.status, 400, "{r:?}");

    // Site ID look-up: no Site ID is configured, so none is found.
    let r = http_get(&d.url("/ssdserver/getServerDetails?id=ANY")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<getServerDetailsResponse>"), "{r:?}");
    assert!(r.body.contains("<responseCode>1</responseCode>"), "{r:?}");
}

#[test]
fn server_details_answer_for_the_configured_site_id_only() {
    let d = Daemon::start(|c| c.server_extra = "site_id = \"ACME01\"\n".into());
    let r = http_get(&d.url("/ssdserver/getServerDetails?id=ACME01")).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("<responseCode>0</responseCode>"), "{r:?}");
    assert!(r.body.contains("<hostname>127.0.0.1</hostname>"), "{r:?}");
    let port = d
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(r.body.contains(&format!("<port>{port}</port>")), "{r:?}");
    assert!(r.body.contains("<usingSSL>NO</usingSSL>"), "{r:?}");
    assert!(
        r.body.contains("<connectionType>pinsafe</connectionType>"),
        "{r:?}"
    );
    for other in ["ACME02", "acme01", ""] {
        let r = http_get(&d.url(&format!("/ssdserver/getServerDetails?id={other}"))).unwrap();
        assert!(
            r.body.contains("<responseCode>1</responseCode>"),
            "{other}: {r:?}"
        );
    }
}
