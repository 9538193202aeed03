//! A small Chrome DevTools Protocol client for browser tests: it starts headless Chromium
//! with a fresh profile, speaks CDP over a WebSocket (`tungstenite`'s client, which
//! answers pings itself) and records every console error, uncaught exception and error
//! log entry of the page, so that a test can demand none.
//!
//! Chromium is `EVENTIDE_CHROMIUM` if set, else `/usr/bin/chromium` (Debian's package,
//! which `.ci/run` installs). A test that needs it fails, never skips, when it is missing.
//!
//! ```text
//!   test ── call(method) ──> WebSocket ──> chromium (browser target)
//!                                            └── flat session ──> the page
//!   test <── reply {id} ──── WebSocket <──── events (console, exceptions, log) ──> problems
//! ```

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long Chromium may take to start on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long one CDP call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest message accepted from the browser (a screenshot is a few MB of base64).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The Chromium binary: `EVENTIDE_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("EVENTIDE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: browser tests need Chromium. Install it with \
         `apt-get install -y chromium` (as .ci/run does) or set EVENTIDE_CHROMIUM",
        path.display()
    );
    path
}

/// `target/test-artifacts/<name>`, created: where tests leave screenshots.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash> → target/test-artifacts/<name>
    let target = exe.ancestors().nth(3).expect("test binary in target/<profile>/deps");
    let dir = target.join("test-artifacts").join(name);
    std::fs::create_dir_all(&dir).expect("create the artifacts dir");
    dir
}

/// A headless Chromium with one page, driven over CDP.
pub struct Browser {
    child: Child,
    /// Removed after the browser exits.
    _profile: TempDir,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    problems: Vec<String>,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one page of `width` × `height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let binary = chromium();
        let profile = tempfile::Builder::new().prefix("eventide-chromium-").tempdir().expect("dir");
        let stderr = std::fs::File::create(profile.path().join("stderr.log")).expect("log");
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().join("data").display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group, so that every process it forks can be ended with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", binary.display()));
        let mut browser = Browser::connect(child, profile);
        browser.open_page(width, height);
        browser
    }

    fn connect(mut child: Child, profile: TempDir) -> Browser {
        let port_file = profile.path().join("data").join("DevToolsActivePort");
        let started = Instant::now();
        let (port, path) = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                if let Ok(port) = port.trim().parse::<u16>() {
                    break (port, path.trim().to_owned());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(profile.path().join("stderr.log"));
                panic!(
                    "chromium exited with {status} before it listened: {}",
                    log.unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "chromium wrote no DevToolsActivePort within {START_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let socket = open_socket(port, &path)
            .unwrap_or_else(|e| panic!("failed to open the DevTools socket on port {port}: {e}"));
        Browser {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
            problems: Vec::new(),
        }
    }

    fn open_page(&mut self, width: u32, height: u32) {
        let target = self.browser_call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = self.browser_call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        self.session = attached["sessionId"].as_str().expect("sessionId").to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(domain, json!({}));
        }
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// A call to the page's session; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        loop {
            let text = receive(&mut self.socket).unwrap_or_else(|e| panic!("{method}: {e}"));
            let reply: Value = serde_json::from_str(&text).expect("CDP messages are JSON");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method} failed: {}", reply["error"]);
                return reply["result"].clone();
            }
            self.observe(&reply);
        }
    }

    /// Records the events that mean the page is broken.
    fn observe(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.consoleAPICalled")
                if matches!(params["type"].as_str(), Some("error" | "assert")) =>
            {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|args| {
                        args.iter()
                            .map(|a| {
                                a["value"]
                                    .as_str()
                                    .map_or_else(|| a["description"].to_string(), str::to_owned)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let kind = params["type"].as_str().unwrap_or_default();
                self.problems.push(format!("console.{kind}: {}", args.join(" ")));
            }
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                self.problems.push(format!(
                    "uncaught exception: {} {}",
                    details["text"], details["exception"]["description"]
                ));
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                self.problems.push(format!("log error: {} ({})", entry["text"], entry["url"]));
            }
            _ => {}
        }
    }

    /// Console errors, uncaught exceptions and error log entries seen so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url }));
        assert!(result.get("errorText").is_none(), "navigate to {url}: {}", result["errorText"]);
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it yields something other than null, false, 0 or "",
    /// and returns that; panics after `deadline` with `what` and the page's text.
    pub fn wait_for(&mut self, what: &str, deadline: Duration, expression: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(expression);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out after {deadline:?} waiting for {what}; the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses and releases Enter on whatever has the keyboard focus.
    pub fn press_enter(&mut self) {
        let key = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
        let mut down = key.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        self.call("Input.dispatchKeyEvent", down);
        let mut up = key;
        up["type"] = json!("keyUp");
        self.call("Input.dispatchKeyEvent", up);
    }

    /// Saves a PNG of the page (`full_page`: all of it, else the viewport) to `path`.
    pub fn screenshot(&mut self, path: &Path, full_page: bool) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": full_page }),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        let png = data_encoding::BASE64.decode(data.as_bytes()).expect("screenshot is base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, then end the whole process group that was started.
        self.next_id += 1;
        let close = json!({ "id": self.next_id, "method": "Browser.close" });
        let _ = self.socket.send(Message::text(close.to_string()));
        let pid = self.child.id();
        let exited = wait_gently(&mut self.child, Duration::from_secs(5));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        if !exited {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Opens the DevTools WebSocket at `path` on `127.0.0.1:port`; a read waits at most
/// [`CALL_TIMEOUT`].
fn open_socket(port: u16, path: &str) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (socket, _) = tungstenite::client::client_with_config(url, stream, Some(config))
        .map_err(|e| format!("handshake refused: {e}"))?;
    Ok(socket)
}

/// The next whole text message; pings are answered by the socket as it reads.
fn receive(socket: &mut WebSocket<TcpStream>) -> Result<String, String> {
    loop {
        match socket.read().map_err(|e| e.to_string())? {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Binary(bytes) => {
                return String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
            }
            Message::Close(_) => return Err("the browser closed the socket".into()),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Waits up to `deadline` for `child` to exit by itself; true if it did.
fn wait_gently(child: &mut Child, deadline: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
