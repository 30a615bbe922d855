//! Test support shared by unit and integration tests: a private `redis-server`.
//!
//! Each [`RedisProcess`] runs its own `redis-server` on a free loopback port,
//! with persistence off, and kills it when dropped. Tests never touch a Redis
//! running on the standard port.
#![doc(hidden)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A `redis-server` child process on 127.0.0.1.
pub struct RedisProcess {
    /// The port it listens on.
    pub port: u16,
    child: Option<Child>,
    /// Arguments beyond the defaults, kept for restarts.
    extra: Vec<String>,
}

impl RedisProcess {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Self::start`] with more arguments (later ones win: `--appendonly yes`
    /// turns persistence on, `--enable-debug-command local` allows `DEBUG SLEEP`).
    pub fn start_with(extra: &[&str]) -> Self {
        for _ in 0..20 {
            let extra = extra.iter().map(|a| a.to_string()).collect();
            let mut redis = Self { port: free_port(), child: None, extra };
            if redis.try_start() {
                return redis;
            }
        }
        panic!("could not start redis-server on any of 20 ports");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone: persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SHUTDOWN` (saving, when persistence is on), and waits for the exit.
    pub fn shutdown(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "SHUTDOWN"])
            .output()
            .expect("redis-cli is installed with redis-server");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Runs one command with `redis-cli` (installed with redis-server) and
    /// returns what it printed; panics if it fails.
    pub fn command(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed with redis-server");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "redis-cli {args:?} failed: {text}");
        text
    }

    /// Starts the server again on the same port (empty, unless persistence is on).
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server did not start again on port {}", self.port);
    }

    /// Spawns redis-server and waits until it listens. False if it exited instead
    /// (the port was taken meanwhile): then the connection that succeeded, if any,
    /// reached some other process, so it does not count.
    fn try_start(&mut self) -> bool {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Give a failed bind time to show: redis-server exits at once when the port is taken.
                std::thread::sleep(Duration::from_millis(20));
                let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if !exited {
                    return true;
                }
                self.child = None;
                return false;
            }
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A Redis Cluster of three masters (no replicas), each a [`RedisProcess`]
/// on a free port with its own directory for `nodes.conf`; ready (every slot
/// served) when [`RedisCluster::start`] returns.
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<RedisProcess>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three masters and joins them with `redis-cli --cluster create`.
    pub fn start() -> Self {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut nodes = Vec::new();
        for n in 0..3 {
            let node_dir = dir.join(n.to_string());
            std::fs::create_dir_all(&node_dir).expect("a directory for the node");
            let node_dir = node_dir.to_string_lossy().into_owned();
            // The cluster bus on a free port of its own (the default, port + 10000, may not exist).
            let bus = free_port().to_string();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "5000",
                "--cluster-port",
                &bus,
                "--dir",
                &node_dir,
            ];
            nodes.push(RedisProcess::start_with(&args));
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(out.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the cluster did not become ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes, dir }
    }

    /// `redis-cluster://` with every master.
    pub fn url(&self) -> String {
        let first = self.nodes[0].port;
        let rest: Vec<String> = self.nodes[1..].iter().map(|n| format!("node=127.0.0.1:{}", n.port)).collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", rest.join("&"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port no other RedisProcess of this test process has had, and that is free now.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (std::process::id() as u16 % 20_000).wrapping_add(offset.wrapping_mul(7)) % 40_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
