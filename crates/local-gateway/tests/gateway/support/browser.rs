//! Real headless Chromium for the web page's tests, driven over WebDriver (`chromedriver`) with
//! fantoccini, on one chromedriver per test binary: each [`Browser::open`] is its own browser, with
//! its own storage, like two people's laptops; [`Page::new_window`] is another window of the same
//! browser, sharing its storage.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::WAIT;

/// How long the page may take to show something (a reconnect waits up to a second of backoff).
pub const PAGE_WAIT: Duration = Duration::from_secs(10);

const INSTALL: &str = "the browser tests need Debian's chromium and chromium-driver: run `make browser` \
     (sudo apt-get install -y chromium chromium-driver)";

/// A program on PATH.
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file()))
        .unwrap_or_else(|| panic!("no {name} on PATH: {INSTALL}"))
}

/// The test binary's chromedriver: started on first use, on a free port, under a shell that
/// leads a process group of its own with chromedriver and every Chromium it starts, and kills
/// that group when its standard input closes, that is when the test binary exits, however it
/// exits. Each [`Browser::open`] is a new session: its own Chromium with a fresh profile.
fn driver() -> &'static str {
    static DRIVER: OnceLock<(std::process::Child, String)> = OnceLock::new();
    &DRIVER
        .get_or_init(|| {
            assert!(program("chromium").is_file());
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let shell = std::process::Command::new("sh")
                .args(["-c", r#""$0" "$@" & cat >/dev/null; kill -KILL 0"#])
                .arg(program("chromedriver"))
                .arg(format!("--port={port}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|error| panic!("chromedriver does not start ({error}): {INSTALL}"));
            let deadline = std::time::Instant::now() + WAIT;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "chromedriver did not listen within {WAIT:?}: {INSTALL}");
                std::thread::sleep(Duration::from_millis(50));
            }
            (shell, format!("http://127.0.0.1:{port}"))
        })
        .1
}

/// Opens browsers on the test binary's chromedriver for one test; dropped, it ends their
/// sessions (and so their Chromiums), also when the test fails mid-way.
pub struct Browser {
    url: &'static str,
    sessions: std::sync::Mutex<Vec<String>>,
}

impl Browser {
    pub fn shared() -> Self {
        Self { url: driver(), sessions: Default::default() }
    }

    /// A new browser window (its own profile) on `url`.
    pub async fn open(&self, url: &str) -> Page {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": program("chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1100,720", "--no-first-run"],
            }
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(self.url)
            .await
            .unwrap_or_else(|error| panic!("no Chromium session ({error}): {INSTALL}"));
        if let Ok(Some(session)) = client.session_id().await {
            self.sessions.lock().unwrap().push(session);
        }
        client.goto(url).await.expect("the page loads");
        let window = client.window().await.expect("a window");
        Page { client, window }
    }
}

impl Drop for Browser {
    /// `DELETE /session/{id}` for each session opened, over a plain socket (no runtime is at hand
    /// in a drop); a session its test already closed answers 404, which is fine.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        for session in self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).drain(..) {
            let Ok(mut socket) = std::net::TcpStream::connect(address) else { continue };
            let _ = socket.set_read_timeout(Some(WAIT));
            let request = format!(
                "DELETE /session/{session} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if socket.write_all(request.as_bytes()).is_ok() {
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
    }
}

/// One browser window on the chat page. Windows of one browser share one WebDriver session, so
/// every call first switches to its own window (the tests drive one window at a time).
pub struct Page {
    pub client: Client,
    window: WindowHandle,
}

impl Page {
    /// Another window of the same browser (same profile, same local storage) on `url`.
    pub async fn new_window(&self, url: &str) -> Page {
        let opened = self.client.new_window(false).await.expect("a new window");
        let page = Page { client: self.client.clone(), window: opened.handle };
        page.focus().await;
        page.client.goto(url).await.expect("the page loads");
        page
    }

    /// Makes this window the one WebDriver commands go to.
    pub async fn focus(&self) {
        self.client.switch_to_window(self.window.clone()).await.expect("switch window");
    }

    /// Runs a script in this window and returns its value.
    pub async fn run(&self, script: &str, arguments: Vec<Value>) -> Value {
        self.focus().await;
        self.client.execute(script, arguments).await.unwrap_or_else(|error| panic!("{script}: {error}"))
    }

    /// Runs an asynchronous script (its last argument is the callback) and returns what it passes.
    pub async fn run_async(&self, script: &str) -> Value {
        self.focus().await;
        self.client.execute_async(script, vec![]).await.unwrap_or_else(|error| panic!("{script}: {error}"))
    }

    /// Reloads the page, as a person pressing F5.
    pub async fn reload(&self) {
        self.focus().await;
        self.client.refresh().await.expect("reload");
    }

    pub async fn element(&self, css: &str) -> Element {
        self.focus().await;
        self.client.wait().at_most(PAGE_WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|error| {
            panic!("no {css} on the page within {PAGE_WAIT:?}: {error}");
        })
    }

    /// Types into a field (after clearing it); `\u{E007}` is Enter.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Clicks an element, finding it again if the page re-rendered it between finding and clicking.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            match self.element(css).await.click().await {
                Ok(()) => return,
                Err(error) if error.to_string().contains("stale element") && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("click {css}: {error}"),
            }
        }
    }

    /// Waits until the element's text contains `text`; returns the whole text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        self.focus().await;
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if seen.contains(text) {
                return seen;
            }
            assert!(tokio::time::Instant::now() < deadline, "{css} never showed {text:?}; it shows {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the connection state (`#state[data-state]`) is `state`; returns its words.
    pub async fn wait_for_state(&self, state: &str) -> String {
        let css = format!("#state[data-state=\"{state}\"]");
        self.element(&css).await.text().await.expect("state text")
    }

    /// Records from now on every connection state the page passes through and its words, so that
    /// a state lasting less than one poll (a first retry is half a second away) is still seen by
    /// [`Page::wait_until_seen`]. (A mutation observer runs once the page's code has set both.)
    pub async fn record_states(&self) {
        let script = "const line = document.getElementById('state');
                      const note = () => window.statesSeen.push([line.dataset.state, line.textContent, Date.now()]);
                      window.statesSeen = [];
                      note();
                      new MutationObserver(note).observe(line, { attributes: true, attributeFilter: ['data-state'] });";
        self.run(script, vec![]).await;
    }

    /// Waits until the page has been in `state` since [`Page::record_states`]; returns its words then.
    pub async fn wait_until_seen(&self, state: &str) -> String {
        self.wait_until_seen_at(state).await.0
    }

    /// As [`Page::wait_until_seen`], with the page's clock (epoch milliseconds) when it got there.
    pub async fn wait_until_seen_at(&self, state: &str) -> (String, u64) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let seen = self.run("return window.statesSeen;", vec![]).await;
            let seen: Vec<(String, String, u64)> =
                serde_json::from_value(seen).expect("record_states was called first");
            if let Some((_, words, at)) = seen.iter().find(|(name, _, _)| name == state) {
                return (words.clone(), *at);
            }
            assert!(tokio::time::Instant::now() < deadline, "the page never was {state:?}; it was {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signs in in demo mode and waits until connected.
    pub async fn sign_in(&self, user: &str) {
        self.type_into("#user-id", user).await;
        self.click("#connect").await;
        self.wait_for_state("connected").await;
        let sign_in = self.element("#sign-in-view").await;
        assert!(!sign_in.is_displayed().await.expect("displayed"), "the sign-in form is gone once connected");
        assert!(self.element("#body").await.is_displayed().await.expect("displayed"), "the composer shows");
    }

    /// Opens a direct conversation with `user` (typed, Enter).
    pub async fn message_user(&self, user: &str) {
        self.type_into("#direct-user", &format!("{user}\u{E007}")).await;
        self.wait_for_text("#conversation-title", user).await;
    }

    /// Joins a room (typed, Enter) and waits until the server says joined.
    pub async fn join(&self, room: &str) {
        self.type_into("#room-id", &format!("{room}\u{E007}")).await;
        self.wait_for_text("#messages", &format!("You joined {room}.")).await;
    }

    /// Sends a message in the open conversation with the keyboard.
    pub async fn say(&self, text: &str) {
        self.type_into("#body", &format!("{text}\u{E007}")).await;
        self.wait_for_text("#messages .own:last-child .body", text).await;
    }

    /// Opens a conversation from the list.
    pub async fn open_conversation(&self, key: &str) {
        self.click(&format!("#conversations button[data-key=\"{key}\"]")).await;
    }

    /// The unread count a conversation's badge shows (0 without a badge).
    pub async fn unread(&self, key: &str) -> u64 {
        let script = "const b = document.querySelector(`#conversations button[data-key=\"${arguments[0]}\"] .unread`);
                      return b ? Number(b.textContent) : 0;";
        self.run(script, vec![json!(key)]).await.as_u64().unwrap()
    }

    /// Waits until a conversation's badge shows `count`.
    pub async fn wait_for_unread(&self, key: &str, count: u64) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT;
        loop {
            let seen = self.unread(key).await;
            if seen == count {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{key} never showed {count} unread; it shows {seen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The open conversation as shown: `(seq, body, state)` of each stored message in order
    /// (`state` is `sent` or `read` for the user's own, empty for others'), then the outbox's
    /// entries with seq 0 and their state (`sending`, `failed`, `expired`).
    pub async fn shown(&self) -> Vec<(u64, String, String)> {
        let script = "return [...document.querySelectorAll('#messages li.message')].map((li) =>
                        [Number(li.dataset.seq ?? 0), li.querySelector('.body').textContent, li.dataset.state ?? '']);";
        serde_json::from_value(self.run(script, vec![]).await).unwrap()
    }

    /// Clicks "Load older messages" until the conversation's start (or its expired edge) shows.
    pub async fn scroll_to_start(&self) {
        let deadline = tokio::time::Instant::now() + PAGE_WAIT * 3;
        loop {
            let edge =
                self.run("return document.querySelector('#messages .edge')?.dataset.edge ?? null;", vec![]).await;
            if edge.is_string() {
                return;
            }
            self.run("document.getElementById('load-older')?.click();", vec![]).await;
            assert!(tokio::time::Instant::now() < deadline, "the start of the conversation never showed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many entries this browser's outbox (local storage) holds.
    pub async fn outbox_len(&self) -> u64 {
        let script = "return Object.keys(localStorage).filter((key) => key.startsWith('chat.outbox.')).length;";
        self.run(script, vec![]).await.as_u64().unwrap()
    }

    pub async fn url(&self) -> String {
        self.focus().await;
        self.client.current_url().await.expect("url").to_string()
    }

    /// Closes this window only (its browser's other windows stay).
    pub async fn close_window(self) {
        self.focus().await;
        self.client.close_window().await.expect("close the window");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
