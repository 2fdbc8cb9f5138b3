//! The self-service web pages in a real browser: headless Chromium (Debian's
//! `chromium`), driven over WebDriver by `fantoccini` through a private
//! `chromedriver` on a port chosen at run time, against the real daemon.
//!
//! One browser session walks the three flows a user goes through: request a
//! Mobile Provision Code on `/resetpin/provision`, open the Provision URL from
//! the spool message, "Get Server Settings" (the server address, the user name
//! and a QR code that decodes, from a screenshot, to the deep link) without
//! spending the code; reset the PIN on `/resetpin` and log in over RADIUS
//! (radclient) with the new PIN; change the PIN on `/userportal/changepin`.
//! A screenshot of every page is saved under `CARGO_TARGET_TMPDIR/browser/`.
//!
//! Needs `chromium` and `chromium-driver` (installed by `tools/test.sh`); the
//! test fails, never skips, without them.

use std::fs::{self, File};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use pinwheel_tests::{free_tcp_port, mobile_otc, Daemon, RadiusOutcome};
use serde_json::json;

/// Debian's Chromium binary.
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the whole browser walk may take before the test fails.
const FLOW_TIMEOUT: Duration = Duration::from_secs(180);
/// How long we wait for `chromedriver` to answer `GET /status`.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long we wait for an element after a navigation.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the screenshots go (created; printed by the test).
fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

/// Path of `name` in `/usr/bin` or on `PATH`; panics telling to run tools/test.sh.
fn require_program(name: &str, package: &str) -> PathBuf {
    let mut dirs = vec![PathBuf::from("/usr/bin")];
    if let Some(paths) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&paths));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found (/usr/bin nor PATH): the browser test needs Debian's \
                 {package}; run tools/test.sh, which installs chromium and chromium-driver"
            )
        })
}

/// A private `chromedriver` in its own process group; dropping it kills the
/// group (chromedriver and any Chromium it started).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `chromedriver --port=N` (N free right now) and waits for it to answer.
    fn start(log: &Path) -> Result<Driver> {
        let program = require_program("chromedriver", "chromium-driver");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_tcp_port();
            let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
            let err = out.try_clone()?;
            let child = {
                use std::os::unix::process::CommandExt;
                Command::new(&program)
                    .arg(format!("--port={port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(out))
                    .stderr(Stdio::from(err))
                    .process_group(0)
                    .spawn()
                    .with_context(|| format!("spawn {}", program.display()))?
            };
            let mut driver = Driver { child, port };
            match driver.wait_ready() {
                Ok(()) => return Ok(driver),
                Err(e) => last = format!("{e:#}: {}", fs::read_to_string(log).unwrap_or_default()),
            }
        }
        bail!("chromedriver did not start: {last}")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + DRIVER_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("chromedriver exited with {st}");
            }
            if matches!(agent.get(&url).call(), Ok(r) if r.status() == 200) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "chromedriver not answering {url} after {DRIVER_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session (plain HTTP to the local chromedriver).
async fn browser(driver: &Driver) -> Result<Client> {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1000,1200",
            ],
        },
    });
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => bail!("capabilities are a JSON object"),
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .map_err(|e| anyhow!("WebDriver session with {CHROMIUM}: {e}"))
}

/// Screenshots and element helpers for one session.
struct Page<'a> {
    client: &'a Client,
    dir: PathBuf,
    shots: Vec<String>,
}

impl Page<'_> {
    async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| anyhow!("open {url}: {e}"))
    }

    /// Waits for the element at CSS `selector`.
    async fn find(&self, selector: &str) -> Result<Element> {
        self.client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .for_element(Locator::Css(selector))
            .await
            .map_err(|e| anyhow!("element {selector}: {e}"))
    }

    async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        let el = self.find(selector).await?;
        el.clear()
            .await
            .map_err(|e| anyhow!("clear {selector}: {e}"))?;
        el.send_keys(text)
            .await
            .map_err(|e| anyhow!("type into {selector}: {e}"))
    }

    async fn click(&self, selector: &str) -> Result<()> {
        self.find(selector)
            .await?
            .click()
            .await
            .map_err(|e| anyhow!("click {selector}: {e}"))
    }

    async fn text(&self, selector: &str) -> Result<String> {
        self.find(selector)
            .await?
            .text()
            .await
            .map_err(|e| anyhow!("text of {selector}: {e}"))
    }

    /// Waits until the page's `<h1>` (every page has one) reads `expected`:
    /// right after a click the old page may still be showing.
    async fn expect_title(&self, expected: &str) -> Result<()> {
        let deadline = Instant::now() + ELEMENT_TIMEOUT;
        loop {
            // A stale or missing heading (mid-navigation) is retried.
            let seen = match self.client.find(Locator::Css("h1")).await {
                Ok(h1) => h1.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if seen == expected {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "page title {seen:?}, expected {expected:?} (after {ELEMENT_TIMEOUT:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot of the whole page as `NAME.png`.
    async fn shot(&mut self, name: &str) -> Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| anyhow!("screenshot {name}: {e}"))?;
        self.save(name, &png)
    }

    fn save(&mut self, name: &str, png: &[u8]) -> Result<()> {
        let path = self.dir.join(format!("{name}.png"));
        fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        self.shots.push(name.to_string());
        Ok(())
    }
}

/// The text of the QR code in a PNG image.
fn decode_qr(png_bytes: &[u8]) -> Result<String> {
    let mut decoder = png::Decoder::new(Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("PNG header")?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| anyhow!("PNG too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).context("PNG frame")?;
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        match channels {
            1 | 2 => buf[i],
            _ => {
                let (r, g, b) = (
                    u32::from(buf[i]),
                    u32::from(buf[i + 1]),
                    u32::from(buf[i + 2]),
                );
                // Rec. 601 weights; values stay within 0..=255.
                u8::try_from((299 * r + 587 * g + 114 * b) / 1000).unwrap_or(u8::MAX)
            }
        }
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    ensure!(
        grids.len() == 1,
        "expected one QR code in the {w}x{h} image, found {}",
        grids.len()
    );
    let (_, text) = grids[0].decode().map_err(|e| anyhow!("QR decode: {e:?}"))?;
    Ok(text)
}

/// The OTC of security string `string` under `pin` (digit 0 names position 10).
fn otc(string: &str, pin: &str) -> String {
    let chars: Vec<char> = string.chars().collect();
    pin.bytes()
        .map(|d| chars[(usize::from(d - b'0') + 9) % 10])
        .collect()
}

/// Percent-encoding of a deep-link query value (RFC 3986 unreserved kept).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Waits (up to 20 s) for more than `seen` messages of `kind` for `user`;
/// returns the value after `prefix` in the newest.
fn spool_value(d: &Daemon, user: &str, kind: &str, seen: usize, prefix: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msgs = d.spool_for(user, kind);
        if msgs.len() > seen {
            return msgs
                .last()
                .and_then(|m| m.body_value(prefix))
                .ok_or_else(|| anyhow!("no line {prefix:?} in the {kind} message"));
        }
        ensure!(Instant::now() < deadline, "no {kind} message for {user}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The three flows, in one browser session.
async fn walk(d: &Daemon, page: &mut Page<'_>) -> Result<()> {
    let base = d.base_url();
    d.add_user("alice", "1234");

    // 1. Request a Mobile Provision Code.
    page.goto(&d.url("/resetpin/provision")).await?;
    page.expect_title("Provision a mobile device").await?;
    page.shot("01-resetpin-provision").await?;
    page.fill("#username", "alice").await?;
    page.click("#provision-button").await?;
    let result = page.text("#result").await?;
    ensure!(
        result.starts_with("If the user name is known, a Mobile Provision Code has been sent"),
        "provision request answer: {result}"
    );
    page.shot("02-resetpin-provision-sent").await?;
    let msg = d.wait_provision_message("alice", 0);
    let code = msg
        .provision_code()
        .ok_or_else(|| anyhow!("no code in the message"))?;
    let provision_url = msg
        .body
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{base}/provision#")))
        .ok_or_else(|| anyhow!("no Provision URL in the message:\n{}", msg.body))?
        .to_string();
    ensure!(
        provision_url == format!("{base}/provision#user=alice&code={code}"),
        "Provision URL {provision_url}"
    );

    // 2. The Provision URL and "Get Server Settings".
    page.goto(&provision_url).await?;
    page.expect_title("Provision your mobile device").await?;
    let href = page
        .find("#open-in-app")
        .await?
        .attr("href")
        .await
        .map_err(|e| anyhow!("href: {e}"))?
        .unwrap_or_default();
    ensure!(
        href == format!("pinwheel://provision?server={}", encode(&base)),
        "landing page's Open in app: {href}"
    );
    page.shot("03-provision-landing").await?;
    page.fill("#username", "alice").await?;
    page.fill("#code", &code).await?;
    page.click("#server-settings").await?;
    page.expect_title("Server settings").await?;
    ensure!(
        page.text("#server-address").await? == base,
        "server address"
    );
    ensure!(
        page.text("#settings-username").await? == "alice",
        "user name"
    );
    let deep_link = format!(
        "pinwheel://provision?server={}&user=alice&code={code}",
        encode(&base)
    );
    let href = page
        .find("#open-in-app")
        .await?
        .attr("href")
        .await
        .map_err(|e| anyhow!("href: {e}"))?
        .unwrap_or_default();
    ensure!(href == deep_link, "Open in app link {href}");
    page.shot("04-server-settings").await?;
    let qr_png = page
        .find("#qr svg")
        .await?
        .screenshot()
        .await
        .map_err(|e| anyhow!("screenshot of the QR code: {e}"))?;
    page.save("05-server-settings-qr", &qr_png)?;
    let decoded = decode_qr(&qr_png)?;
    ensure!(
        decoded == deep_link,
        "QR decodes to {decoded:?}, expected the deep link"
    );
    // Neither the landing page nor the settings spent the code.
    let state = d.path("phone.json");
    let out = d.mobile_provision(&state, "alice", &code);
    ensure!(out.success(), "the code is still live: {out}");
    ensure!(out.stdout.contains("Device Provisioned"), "{out}");

    // 3. Reset PIN: a new PIN, sent over the transport, works over RADIUS.
    page.goto(&d.url("/resetpin")).await?;
    page.expect_title("Reset PIN").await?;
    page.shot("06-resetpin").await?;
    page.fill("#username", "alice").await?;
    page.click("#request-code-button").await?;
    page.find("#reset-button").await?;
    page.shot("07-resetpin-code").await?;
    let reset_code = spool_value(d, "alice", "reset-code", 0, "Your PIN reset code is: ")?;
    page.fill("#username", "alice").await?;
    page.fill("#code", &reset_code).await?;
    page.click("#reset-button").await?;
    page.expect_title("PIN reset").await?;
    let result = page.text("#result").await?;
    ensure!(
        result.contains("Your PIN has been reset"),
        "reset answer: {result}"
    );
    page.shot("08-resetpin-done").await?;
    let reset_pin = spool_value(d, "alice", "pin", 0, "Your Pinwheel PIN is: ")?;
    ensure!(
        d.auth("alice", &mobile_otc(&state, &reset_pin, None)) == RadiusOutcome::Accept,
        "RADIUS login with the reset PIN"
    );

    // 4. Change PIN with OTCs of the security string the page shows.
    page.goto(&d.url("/userportal/changepin")).await?;
    page.expect_title("Change PIN").await?;
    page.find("#security-string").await?;
    let cells = page
        .client
        .find_all(Locator::Css("#security-string tr:nth-of-type(2) td"))
        .await
        .map_err(|e| anyhow!("security string cells: {e}"))?;
    let mut string = String::new();
    for c in cells {
        string.push_str(c.text().await.map_err(|e| anyhow!("cell: {e}"))?.trim());
    }
    let mut sorted: Vec<char> = string.chars().collect();
    sorted.sort_unstable();
    ensure!(
        sorted.iter().collect::<String>() == "0123456789",
        "the page shows 10 distinct digits, got {string:?}"
    );
    page.shot("09-changepin").await?;
    let new_pin = if reset_pin == "5678" { "4321" } else { "5678" };
    page.fill("#username", "alice").await?;
    page.fill("#otc-old", &otc(&string, &reset_pin)).await?;
    page.fill("#otc-new1", &otc(&string, new_pin)).await?;
    page.fill("#otc-new2", &otc(&string, new_pin)).await?;
    page.click("#change-pin-button").await?;
    page.expect_title("PIN changed").await?;
    let result = page.text("#result").await?;
    ensure!(
        result.contains("Your PIN has been changed"),
        "change PIN answer: {result}"
    );
    page.shot("10-changepin-done").await?;
    ensure!(
        d.auth("alice", &mobile_otc(&state, new_pin, None)) == RadiusOutcome::Accept,
        "RADIUS login with the changed PIN"
    );
    ensure!(
        d.auth("alice", &mobile_otc(&state, &reset_pin, None)) == RadiusOutcome::Reject,
        "RADIUS login with the old PIN must fail"
    );

    // Nothing secret reached the log, URLs included.
    let log = d.log();
    for secret in [&code, &reset_code, &reset_pin] {
        ensure!(!log.contains(secret.as_str()), "log holds a secret:\n{log}");
    }
    Ok(())
}

#[test]
fn pages_work_in_headless_chromium_with_screenshots() {
    let chromium = require_program("chromium", "chromium");
    assert_eq!(
        chromium,
        Path::new(CHROMIUM),
        "Debian's chromium is expected at {CHROMIUM}; run tools/test.sh"
    );
    let dir = output_dir();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let started = Instant::now();
    let d = Daemon::start_default();
    let driver = Driver::start(&dir.join("chromedriver.log")).unwrap_or_else(|e| panic!("{e:#}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = rt.block_on(async {
        let client = browser(&driver).await?;
        let mut page = Page {
            client: &client,
            dir: dir.clone(),
            shots: Vec::new(),
        };
        let walked = tokio::time::timeout(FLOW_TIMEOUT, walk(&d, &mut page)).await;
        let shots = page.shots.clone();
        let _ = client.close().await;
        match walked {
            Ok(r) => r.map(|()| shots),
            Err(_) => Err(anyhow!("browser walk took longer than {FLOW_TIMEOUT:?}")),
        }
    });
    drop(driver);
    println!("browser screenshots in {}", dir.display());
    match outcome {
        Ok(shots) => {
            assert_eq!(shots.len(), 10, "screenshots: {shots:?}");
            for s in &shots {
                let meta = fs::metadata(dir.join(format!("{s}.png")))
                    .unwrap_or_else(|e| panic!("screenshot {s}: {e}"));
                assert!(meta.len() > 1000, "screenshot {s} is {} bytes", meta.len());
            }
            println!("browser walk took {:?}", started.elapsed());
        }
        Err(e) => panic!(
            "{e:#}\nscreenshots so far in {}\n--- pinwheeld log ---\n{}",
            dir.display(),
            d.log()
        ),
    }
}
