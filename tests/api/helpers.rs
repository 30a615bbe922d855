//! Test harness: the real server in-process on 127.0.0.1:0, real socket.io
//! clients (rust_socketio over websocket or polling), and waits with timeouts.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::{Value, json};
use switchboard::config::Config;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Lifts the per-connection rate limit, for tests that send bursts on purpose.
pub fn unlimited(c: &mut Config) {
    c.events_per_second = 1_000_000;
    c.event_burst = 1_000_000;
}

/// Starts the server with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server after `tweak` adjusts the default configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    // Server logs when debugging a test: TEST_LOG=switchboard=debug cargo test ...
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
        .with_test_writer()
        .try_init();
    let mut config = Config::default();
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(async move {
        let result = switchboard::server::run(listener, config, shutdown).await;
        if let Err(e) = &result {
            eprintln!("test server on {addr} stopped with an error: {e}");
        }
        result
    });
    TestApp { addr, stop: Some(stop), task }
}

/// Starts the server (memory mode) over `devices`, which the test keeps to
/// seed records and signals with times of its choosing.
pub async fn spawn_app_over(devices: switchboard::store::devices::Devices, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::default();
    tweak(&mut config);
    let stores = switchboard::core::Stores { devices, ..switchboard::core::Stores::memory() };
    let core = std::sync::Arc::new(switchboard::core::Core::new(std::sync::Arc::new(config), stores, "local", None));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(switchboard::server::run_core(listener, core, None, shutdown));
    TestApp { addr, stop: Some(stop), task }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path`, returning the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.request("GET", path, None, None).await;
        (status, body)
    }

    /// `method path` with an optional JSON body and bearer token: the status,
    /// the `Retry-After` header, and the JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Option<String>, Value) {
        let mut request = reqwest::Client::new().request(method.parse().unwrap(), self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (status, retry, response.json().await.unwrap())
    }

    /// Stops the server through its shutdown future and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.task).await.expect("server stops").unwrap().unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A socket.io client that records every event it receives, in order.
pub struct Peer {
    pub client: Client,
    /// The `ice-servers` event every connection to `/` gets first (`Null` on other namespaces).
    pub ice_servers: Value,
    events: mpsc::UnboundedReceiver<(String, Value)>,
}

fn first(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
        _ => Value::Null,
    }
}

impl Peer {
    /// Connects over `transport` and waits until the namespace is joined.
    pub async fn connect(app: &TestApp, transport: Transport) -> Peer {
        Self::connect_to(&app.url("/"), transport).await
    }

    pub async fn connect_to(url: &str, transport: Transport) -> Peer {
        Self::connect_with_auth(url, transport, None).await
    }

    /// [`Peer::connect_to`] with `auth` in the namespace CONNECT packet.
    pub async fn connect_with_auth(url: &str, transport: Transport, auth: Option<Value>) -> Peer {
        let mut peer = Self::open(url, "/", transport, auth).await;
        peer.ice_servers = peer.expect("ice-servers").await;
        peer
    }

    /// A client of namespace `ns` (not `/`: no `ice-servers` comes first) with
    /// `auth` in its CONNECT packet, over websocket, once the namespace is joined.
    pub async fn connect_ns(url: &str, ns: &str, auth: Option<Value>) -> Peer {
        Self::open(url, ns, Transport::Websocket, auth).await
    }

    /// Connects to namespace `ns` and waits for its CONNECT ack.
    async fn open(url: &str, ns: &str, transport: Transport, auth: Option<Value>) -> Peer {
        let (tx, events) = mpsc::unbounded_channel();
        let (open, error) = (tx.clone(), tx.clone());
        let mut builder = ClientBuilder::new(url)
            .namespace(ns)
            .transport_type(transport.into())
            .reconnect(false)
            .on("open", move |_, _| {
                let _ = open.send(("open".into(), Value::Null));
                async {}.boxed()
            })
            .on("error", move |p, _| {
                let _ = error.send(("error".into(), first(p)));
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let _ = tx.send((String::from(event), first(payload)));
                async {}.boxed()
            });
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder.connect().await.expect("client connects");
        let mut peer = Peer { client, ice_servers: Value::Null, events };
        // Emitting before the namespace CONNECT ack would kill the session.
        peer.expect("open").await;
        peer
    }

    /// Connects and joins `room` as `user`, consuming the join's own events.
    pub async fn joined(app: &TestApp, transport: Transport, room: &str, user: &str) -> Peer {
        Self::joined_url(&app.url("/"), transport, room, user).await
    }

    /// [`Peer::joined`] for a server given by URL.
    pub async fn joined_url(url: &str, transport: Transport, room: &str, user: &str) -> Peer {
        Self::joined_with_auth(url, transport, None, room, user).await
    }

    /// [`Peer::joined_url`] with `auth` in the namespace CONNECT packet.
    pub async fn joined_with_auth(
        url: &str,
        transport: Transport,
        auth: Option<Value>,
        room: &str,
        user: &str,
    ) -> Peer {
        let mut peer = Self::connect_with_auth(url, transport, auth).await;
        let ack = peer.ack("join-room", json!({"roomId": room, "userId": user})).await;
        assert_eq!(ack["ok"], true, "join of {user}: {ack}");
        peer.expect("room-users").await;
        peer
    }

    /// Emits without an ack.
    pub async fn emit(&self, event: &str, data: Value) {
        self.client.emit(event, data).await.expect("emit");
    }

    /// Emits with an ack callback and returns the ack's first argument.
    pub async fn ack(&self, event: &str, data: Value) -> Value {
        let mut rx = self.ack_later(event, data).await;
        tokio::time::timeout(WAIT, rx.recv()).await.expect("ack in time").expect("ack")
    }

    /// Emits with an ack callback, returning once sent; the ack's first argument comes on the receiver.
    pub async fn ack_later(&self, event: &str, data: Value) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.client
            .emit_with_ack(event, data, WAIT, move |p, _| {
                // rust_socketio hands an ack's arguments over as one array.
                let args = first(p);
                let _ = tx.send(args.get(0).cloned().unwrap_or(args));
                async {}.boxed()
            })
            .await
            .expect("emit");
        rx
    }

    /// The next event received, whatever it is.
    pub async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.events.recv()).await.expect("an event in time").expect("client alive")
    }

    /// Events already received, without waiting.
    pub fn received_so_far(&mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// The next event other than those in `skip` must be `event`; returns its payload.
    pub async fn expect_skipping(&mut self, event: &str, skip: &[&str]) -> Value {
        loop {
            let (name, data) = self.next().await;
            if !skip.contains(&name.as_str()) {
                assert_eq!(name, event, "expected {event}, got {name}: {data}");
                return data;
            }
        }
    }

    /// The next `event` whose payload satisfies `check`; returns its payload.
    /// Whatever comes before it (other events, other `event`s) is passed over.
    pub async fn wait_for(&mut self, event: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv()).await;
            let (name, data) = next.unwrap_or_else(|_| panic!("no {event} as expected in time")).expect("client alive");
            if name == event && check(&data) {
                return data;
            }
        }
    }

    /// The next event must be `event`; returns its payload.
    pub async fn expect(&mut self, event: &str) -> Value {
        let (name, data) = self.next().await;
        assert_eq!(name, event, "expected {event}, got {name}: {data}");
        data
    }

    pub async fn disconnect(self) {
        self.client.disconnect().await.expect("disconnect");
    }
}

/// An HS256 token for `claims`, signed with `key`.
pub fn jwt(claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Now, in seconds since the epoch (for `exp`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The transport a test client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Websocket only, from the first request.
    Websocket,
    /// HTTP long-polling only.
    Polling,
}

impl From<Transport> for TransportType {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Websocket => TransportType::Websocket,
            Transport::Polling => TransportType::Polling,
        }
    }
}

/// Both transports, for tests that must hold on each.
pub const TRANSPORTS: [Transport; 2] = [Transport::Websocket, Transport::Polling];

/// Waits until `check` returns true, polling every 50 ms (within the default REST
/// rate limit) for at most [`WAIT`].
/// For state that has no event to wait on (a REST listing after a disconnect).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A hand-driven polling client: it joins a room, then polls only when told
/// to (a stalled target), reading each response body whole. rust_engineio 0.6
/// parses every chunk of a polling body as a whole payload, so large bursts
/// received over polling are read with this client instead.
pub struct StalledPoller {
    http: reqwest::Client,
    url: String,
}

impl StalledPoller {
    pub async fn join(app: &TestApp, room: &str, user: &str) -> Self {
        let http = reqwest::Client::new();
        let base = app.url("/socket.io/?EIO=4&transport=polling");
        let open = http.get(&base).send().await.unwrap().text().await.unwrap();
        let handshake: Value = serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
        let url = format!("{base}&sid={}", handshake["sid"].as_str().unwrap());
        let poller = Self { http, url };
        poller.post("40").await;
        // A poll that finds only an engine.io ping (answered, left out) comes back
        // empty: with a short ping interval one can be queued before the ack.
        let mut connected = Vec::new();
        for _ in 0..20 {
            connected = poller.poll().await;
            if !connected.is_empty() {
                break;
            }
        }
        assert!(connected.first().is_some_and(|p| p.starts_with("40")), "namespace connect ack, got {connected:?}");
        poller.post(&format!(r#"42["join-room",{{"roomId":"{room}","userId":"{user}"}}]"#)).await;
        poller
    }

    /// Sends an engine.io pong whether or not a ping came; whether the
    /// session took it (false once the server closed it).
    pub async fn pong(&self) -> bool {
        let response = self.http.post(&self.url).body("3").send().await;
        response.is_ok_and(|r| r.status() == 200)
    }

    async fn post(&self, body: &str) {
        let response = self.http.post(&self.url).body(body.to_owned()).send().await.unwrap();
        assert_eq!(response.status(), 200, "polling POST accepted");
    }

    /// The packets of one long-poll in order, engine.io pings (`2`) kept and not answered.
    pub async fn poll_raw(&self) -> Vec<String> {
        let request = self.http.get(&self.url).timeout(Duration::from_secs(10));
        let payload = request.send().await.unwrap().text().await.unwrap();
        payload.split('\u{1e}').map(str::to_owned).collect()
    }

    /// The packets of one long-poll, engine.io pings answered and left out.
    async fn poll(&self) -> Vec<String> {
        let request = self.http.get(&self.url).timeout(Duration::from_secs(10));
        let payload = request.send().await.unwrap().text().await.unwrap();
        let mut packets = Vec::new();
        for packet in payload.split('\u{1e}') {
            if packet == "2" {
                self.post("3").await;
            } else {
                packets.push(packet.to_owned());
            }
        }
        packets
    }

    /// Every `offer` body received, polling until `last` has arrived.
    pub async fn offers_until(&self, last: &Value) -> Vec<Value> {
        let mut offers = Vec::new();
        while offers.last() != Some(last) {
            offers.extend(self.events("offer").await.into_iter().map(|e| e["offer"].clone()));
        }
        offers
    }

    /// The payloads of the `event` events in the next poll.
    pub async fn events(&self, event: &str) -> Vec<Value> {
        let mut found = Vec::new();
        for packet in self.poll().await {
            let Some(json) = packet.strip_prefix("42") else {
                continue;
            };
            let mut parsed: Value = serde_json::from_str(json).unwrap();
            if parsed[0] == event {
                found.push(parsed[1].take());
            }
        }
        found
    }
}

/// The receiving end of a burst: a rust_socketio client over websocket, or
/// the whole-body poller over polling (see [`StalledPoller`]).
pub enum Receiver {
    Socket(Peer),
    Poller(StalledPoller),
}

impl Receiver {
    pub async fn join(app: &TestApp, transport: Transport, room: &str, user: &str) -> Self {
        match transport {
            Transport::Websocket => Self::Socket(Peer::joined(app, transport, room, user).await),
            Transport::Polling => Self::Poller(StalledPoller::join(app, room, user).await),
        }
    }

    /// The next `n` payloads of `event`, in arrival order; other events are skipped.
    pub async fn take(&mut self, event: &str, n: usize) -> Vec<Value> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self {
                Self::Socket(peer) => got.push(peer.expect_skipping(event, &["user-joined"]).await),
                Self::Poller(poller) => got.extend(poller.events(event).await),
            }
        }
        got
    }
}

/// The real `switchboard` binary, for signals, exit codes, logs and `kill -9`.
const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// The binary with a clean environment, run from a directory with no `.env`.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(std::env::temp_dir()).envs(env.iter().copied());
    cmd
}

/// A running binary whose JSON log lines are collected as they come.
pub struct Running {
    child: Child,
    logs: std::sync::mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
    pub url: String,
}

impl Running {
    pub fn start(env: &[(&str, &str)]) -> Self {
        let base = [("PORT", "0"), ("HOST", "127.0.0.1"), ("LOG_FORMAT", "json")];
        let mut child = command(&[&base[..], env].concat()).stdout(Stdio::piped()).spawn().unwrap();
        let (tx, logs) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let parsed = serde_json::from_str(&line).unwrap_or_else(|_| json!({"raw": line}));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let mut running = Self { child, logs, seen: Vec::new(), url: String::new() };
        let listening = running.wait_log(|l| l["message"] == "listening");
        running.url = format!("http://{}", listening["addr"].as_str().unwrap());
        running
    }

    /// Blocks (bounded by WAIT) until a log line matches.
    pub fn wait_log(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.logs.recv_timeout(left).expect("the expected log line in time");
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    /// Every log line not yet read, up to the end of output (after exit).
    pub fn rest_of_logs(&mut self) -> &[Value] {
        while let Ok(line) = self.logs.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        &self.seen
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.unwrap().success());
    }

    /// Waits (bounded) for exit; returns the exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (i32, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().expect("exited normally"), started.elapsed());
            }
            assert!(started.elapsed() < limit, "still running {limit:?} after the signal");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Running {
    /// `kill -9`: no clean-up runs.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects a raw client (websocket) and returns the first of "open" or
/// "error" (a `connect_error`, with its text). The client stays connected.
pub async fn connect_outcome(url: &str, auth: Option<Value>, headers: &[(&str, &str)]) -> (String, Value) {
    outcome(url, "/", auth, headers).await
}

/// [`connect_outcome`] for namespace `ns`, without extra headers.
pub async fn namespace_outcome(url: &str, ns: &str, auth: Option<Value>) -> (String, Value) {
    outcome(url, ns, auth, &[]).await
}

async fn outcome(url: &str, ns: &str, auth: Option<Value>, headers: &[(&str, &str)]) -> (String, Value) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (open, error) = (tx.clone(), tx);
    let mut builder = ClientBuilder::new(url)
        .namespace(ns)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .on("open", move |_, _| {
            let _ = open.send(("open".to_owned(), Value::Null));
            async {}.boxed()
        })
        .on("error", move |p, _| {
            let _ = error.send(("error".to_owned(), Value::String(format!("{p:?}"))));
            async {}.boxed()
        });
    if let Some(auth) = auth {
        builder = builder.auth(auth);
    }
    for (name, value) in headers {
        builder = builder.opening_header(*name, *value);
    }
    let client = builder.connect().await.expect("the transport connects");
    let outcome = tokio::time::timeout(WAIT, rx.recv()).await.expect("an outcome").unwrap();
    std::mem::forget(client); // keep the connection open for the rest of the test
    outcome
}

/// A `/devices` client over websocket, and the `signal`s pushed to it
/// (rust_socketio cannot ack them, so each comes again after `SIGNAL_ACK_TIMEOUT_MS`).
pub struct Device {
    pub client: Client,
    signals: mpsc::UnboundedReceiver<Value>,
}

impl Device {
    /// Connects as `device` (announced already) to the server at `url`.
    pub async fn connect(url: &str, device: &str) -> Self {
        Self::connect_with(url, json!({ "deviceId": device })).await
    }

    /// Connects with handshake `auth` (`{ deviceId, token? }`).
    pub async fn connect_with(url: &str, auth: Value) -> Self {
        let (open_tx, mut open) = mpsc::unbounded_channel();
        let (signal_tx, signals) = mpsc::unbounded_channel();
        let client = ClientBuilder::new(url)
            .namespace("/devices")
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .auth(auth)
            .on("open", move |_, _| {
                let _ = open_tx.send(());
                async {}.boxed()
            })
            .on("signal", move |p, _| {
                if let Payload::Text(mut args) = p {
                    let _ = signal_tx.send(args.swap_remove(0));
                }
                async {}.boxed()
            })
            .connect()
            .await
            .expect("device connects");
        tokio::time::timeout(WAIT, open.recv()).await.expect("open in time");
        Self { client, signals }
    }

    /// Sends an offer to `to` and returns the ack's status.
    pub async fn signal(&self, to: &str, data: Value) -> Value {
        self.signal_ack(to, data).await["status"].clone()
    }

    /// Sends an offer to `to` and returns the whole ack.
    pub async fn signal_ack(&self, to: &str, data: Value) -> Value {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let payload = json!({ "type": "offer", "toPeerId": to, "data": data });
        self.client
            .emit_with_ack("signal", payload, WAIT, move |p, _| {
                if let Payload::Text(mut args) = p {
                    let _ = tx.send(args.swap_remove(0));
                }
                async {}.boxed()
            })
            .await
            .unwrap();
        let ack = tokio::time::timeout(WAIT, rx.recv()).await.expect("ack in time").unwrap();
        // rust_socketio hands an ack's arguments over as one array.
        ack.get(0).cloned().unwrap_or(ack)
    }

    /// The next `signal` pushed to this device, within `limit`.
    pub async fn next_signal(&mut self, limit: Duration) -> Value {
        tokio::time::timeout(limit, self.signals.recv()).await.expect("a signal in time").unwrap()
    }

    pub async fn disconnect(self) {
        self.client.disconnect().await.unwrap();
    }
}

/// Writes `request` as raw bytes on a new TCP connection and reads one
/// response: its head, then as many body bytes as `Content-Length` says
/// (or up to the server's close). Bounded by [`WAIT`].
pub async fn exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let whole = |read: &[u8]| {
        let text = String::from_utf8_lossy(read);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()));
        length.and_then(|l| l.parse::<usize>().ok()).is_none_or(|l| body.len() >= l)
    };
    let reading = async {
        let mut chunk = [0u8; 4096];
        while !whole(&read) {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, reading).await.expect("a response in time");
    String::from_utf8_lossy(&read).into_owned()
}
