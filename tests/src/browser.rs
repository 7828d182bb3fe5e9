//! A real headless Chromium (Debian's, driven through chromedriver) for the
//! page tests, and the few things every page test does with it: open the
//! browser, find elements by their `data-testid`, wait for a run, read the
//! map's pixels, take screenshots.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::repo_root;

/// chromedriver on a free port, killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_chromedriver() -> Driver {
    let port = crate::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed by ./dev test (Debian chromium-driver)");
    crate::wait_until_listening(port, Duration::from_secs(20), "chromedriver");
    Driver { child, port }
}

pub async fn open_browser(driver: &Driver, profile: &std::path::Path) -> Client {
    open_browser_with(driver, profile, &[]).await
}

/// The same with more Chromium arguments.
pub async fn open_browser_with(
    driver: &Driver,
    profile: &std::path::Path,
    more: &[&str],
) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1200,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(more.iter().map(|a| a.to_string()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": args,
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS setup")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("connect to chromedriver")
}

/// Saves a screenshot as `target/browser-screens/NAME.png` (outside the
/// tracked tree, so the tests leave a clean checkout) and returns it. The
/// README's picture is refreshed only on request:
/// `LENS_REFRESH_README_PICTURE=1 cargo nextest run --release -p lens-tests browser::page_explains_a_photo`.
pub async fn save_screenshot(client: &Client, name: &str) -> Vec<u8> {
    let picture = client.screenshot().await.unwrap();
    assert!(picture.starts_with(b"\x89PNG"));
    let folder = repo_root().join("target/browser-screens");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{name}.png")), &picture).unwrap();
    picture
}

/// Waits (up to 30 s) for the element with this `data-testid`.
pub async fn wait_for(client: &Client, testid: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(&format!("[data-testid='{testid}']")))
        .await
        .unwrap_or_else(|e| panic!("{testid} never appeared: {e}"))
}

/// The text of the element with this `data-testid`.
pub async fn text_of(client: &Client, testid: &str) -> String {
    wait_for(client, testid).await.text().await.unwrap()
}

/// Clicks the element with this `data-testid`.
pub async fn click(client: &Client, testid: &str) {
    wait_for(client, testid).await.click().await.unwrap();
}

/// An attribute of the run's status element, waiting for the element first
/// (a page just opened may not have mounted it yet).
pub async fn status(client: &Client, attribute: &str) -> String {
    wait_for(client, "status")
        .await
        .attr(attribute)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// After a click that starts a run: answers "Run it anyway" when the page
/// asks first. A worker slowed by a loaded machine can estimate a test's
/// run of tens of seconds over the lesson's minute (the question itself is
/// tested in `browser.rs`).
pub async fn run_anyway_if_asked(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(client, "data-state").await == "idle" {
        if let Ok(button) = client.find(Locator::Css("[data-testid=run-anyway]")).await {
            button.click().await.unwrap();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run neither started nor asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_until_not_running(client: &Client) -> String {
    // Only a stuck run reaches this: a run takes seconds, and minutes on a
    // loaded two-core machine (three tests share it with a browser).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let state = status(client, "data-state").await;
        if state != "running" && state != "idle" {
            return state;
        }
        assert!(Instant::now() < deadline, "the explanation did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The heat canvas's RGBA bytes.
pub async fn heat_pixels(client: &Client) -> Vec<u8> {
    canvas_pixels(client, "heatmap-canvas").await
}

/// The RGBA pixels of the canvas with this test id.
pub async fn canvas_pixels(client: &Client, testid: &str) -> Vec<u8> {
    let pixels = client
        .execute(
            r#"const c = document.querySelector(`[data-testid=${arguments[0]}]`);
               return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"#,
            vec![json!(testid)],
        )
        .await
        .unwrap();
    serde_json::from_value(pixels).unwrap()
}

/// The share id in a page's address (`e=`), once it has one.
pub async fn shown_explanation(client: &Client) -> Option<String> {
    let address = client.current_url().await.unwrap();
    address
        .query_pairs()
        .find(|(key, _)| key == "e")
        .map(|(_, id)| id.into_owned())
}

/// Waits until `check` holds for the text of `testid`.
pub async fn wait_for_text(client: &Client, testid: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = text_of(client, testid).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{testid}: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets the viewport (not the window) to `width` x `height` CSS pixels.
pub async fn set_viewport(client: &Client, width: u32, height: u32) {
    client.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let inner: Vec<u32> = serde_json::from_value(inner).unwrap();
    client
        .set_window_size(2 * width - inner[0], 2 * height - inner[1])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}
