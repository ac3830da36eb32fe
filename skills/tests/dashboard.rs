//! The admin dashboard in a real browser (headless Chromium through chromedriver, both from Debian; `.ci/run`
//! installs them): `serve` against the codex-manager double with an admin token, the page opened, signed in (a
//! wrong token first), calls triggered through the double, and what a person sees asserted: the running row
//! appears and goes, the recent table shows the outcome and the error text, the per-skill counts move. The bridge
//! runs in a group of its own (`--cluster`, a `redis-server` the test starts), so the cluster panel shows it.
//!
//! The test saves a screenshot to `$CARGO_TARGET_TMPDIR/dashboard.png`, or to `SKILLBRIDGE_DASHBOARD_SCREENSHOT`
//! (the README's `docs/dashboard.png` is made that way).

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::redis::RedisServer;
use support::{WAIT, free_addr, serve_with_admin};
use tokio::process::{Child, Command};

const TOKEN: &str = "dashboard-t0ken";

/// chromedriver on a free port, once it accepts connections.
async fn chromedriver() -> (Child, String) {
    let addr = free_addr();
    let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
        .arg(format!("--port={}", addr.port()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver; .ci/run does it)");
    let up = async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, up).await.expect("chromedriver listens");
    (child, format!("http://{addr}"))
}

async fn browser(webdriver: &str) -> Client {
    let chromium = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let options = json!({
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::rustls()
        .expect("a TLS configuration")
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("a browser session")
}

async fn element(browser: &Client, xpath: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|error| panic!("the page never showed {xpath}: {error}"))
}

async fn sign_in(browser: &Client, token: &str) {
    let field = element(browser, "//form[@id='signin' and not(@hidden)]//input[@id='token']").await;
    field.clear().await.unwrap();
    field.send_keys(token).await.unwrap();
    browser
        .find(Locator::Css("#signin button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_and_watches_calls_run_and_finish() {
    let double = CodexManagerDouble::start().await.unwrap();
    // In a group of its own, so that the page shows the cluster panel too.
    let redis = RedisServer::start().await.unwrap();
    let admin = free_addr();
    let cluster = ["--cluster", &redis.url(), "--cluster-name", "dash-1"];
    let mut bridge = serve_with_admin(&double, admin, TOKEN, &cluster).await;
    let thread = double.sessions()[0].id.clone();
    let (mut driver, webdriver) = chromedriver().await;
    let browser = browser(&webdriver).await;
    browser.goto(&format!("http://{admin}/")).await.unwrap();

    // A wrong token is refused, and the page says so.
    sign_in(&browser, "not-the-token").await;
    element(&browser, "//p[@id='signin-error' and text()='The token was refused.']").await;
    sign_in(&browser, TOKEN).await;
    element(&browser, "//main[@id='app' and not(@hidden)]").await;
    element(&browser, "//p[@id='live' and text()='live']").await;
    element(
        &browser,
        "//table[@id='skills']/tbody/tr[@data-skill='uppercase']/td[2][text()='0']",
    )
    .await;
    element(&browser, "//p[@id='readiness' and text()='Ready']").await;
    element(
        &browser,
        "//section[@id='cluster-panel' and not(@hidden)]//table[@id='cluster']/tbody/tr[td[1]='dash-1 (this one)']",
    )
    .await;
    let summary = element(&browser, "//span[@id='cluster-summary']").await;
    let summary = summary.text().await.unwrap();
    assert!(
        summary.contains("1 bridge,") && summary.contains("store reachable"),
        "{summary}"
    );

    // A call whose answer the double holds for a while is running meanwhile, then gone.
    double.set_response_delay(Duration::from_millis(1500));
    let slow = double.inject_tool_call(&thread, "uppercase", json!({"text": "hold on"}));
    let row = element(&browser, "//table[@id='running']/tbody/tr[td[1]='uppercase']").await;
    assert_eq!(
        row.find(Locator::XPath("td[2]")).await.unwrap().text().await.unwrap(),
        thread
    );
    double.wait_answered(&slow, WAIT).await.expect("answered");
    double.set_response_delay(Duration::ZERO);
    element(&browser, "//p[@id='running-empty' and not(@hidden)]").await;
    element(
        &browser,
        "//table[@id='recent']/tbody/tr[td[2]='uppercase' and td[3]='success']",
    )
    .await;

    // A call that breaks the schema: its outcome and error text, and the skill's counts.
    let bad = double.inject_tool_call(&thread, "uppercase", json!({"txt": "typo"}));
    double.wait_answered(&bad, WAIT).await.expect("answered");
    let failed = element(&browser, "//table[@id='recent']/tbody/tr[td[3]='invalid_arguments']").await;
    let error = failed
        .find(Locator::Css("td.error-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.starts_with("invalid arguments for `uppercase`: "), "{error}");
    element(
        &browser,
        "//table[@id='skills']/tbody/tr[@data-skill='uppercase']/td[2][text()='2']",
    )
    .await;
    let by_outcome = element(
        &browser,
        "//table[@id='skills']/tbody/tr[@data-skill='uppercase']/td[3]",
    )
    .await;
    assert_eq!(by_outcome.text().await.unwrap(), "invalid_arguments 1, success 1");

    // Filtering the recent calls by outcome.
    let outcome = browser.find(Locator::Id("filter-outcome")).await.unwrap();
    outcome.select_by_value("success").await.unwrap();
    element(&browser, "//span[@id='recent-total' and text()='(1)']").await;

    // The README's picture: a few calls done and one running.
    for text in ["ticket T-1", "ticket T-2"] {
        let call = double.inject_tool_call(&thread, "word_count", json!({"text": text}));
        double.wait_answered(&call, WAIT).await.expect("answered");
    }
    outcome.select_by_value("").await.unwrap();
    element(
        &browser,
        "//table[@id='skills']/tbody/tr[@data-skill='word_count']/td[2][text()='2']",
    )
    .await;
    double.set_response_delay(Duration::from_secs(3));
    let held = double.inject_tool_call(&thread, "slugify", json!({"text": "Dashboard Screenshot"}));
    element(&browser, "//table[@id='running']/tbody/tr[td[1]='slugify']").await;
    // Tall enough for every panel in one picture.
    browser.set_window_size(1280, 1500).await.unwrap();
    let screenshot = browser.screenshot().await.unwrap();
    let path = std::env::var_os("SKILLBRIDGE_DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    std::fs::write(&path, screenshot).unwrap();
    double.wait_answered(&held, WAIT).await.expect("answered");

    // In a narrow window (a phone, a split screen) the page reflows: nothing but the tables' own scroll boxes is
    // wider than the window.
    browser.set_window_size(400, 900).await.unwrap();
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]",
            vec![],
        )
        .await
        .unwrap();
    let (page, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(page <= window, "the page is {page} px wide in a {window} px window");
    let narrow = browser.screenshot().await.unwrap();
    std::fs::write(path.with_file_name("dashboard-narrow.png"), narrow).unwrap();

    browser.close().await.unwrap();
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;
    driver.start_kill().unwrap();
    let _ = driver.wait().await;
}
