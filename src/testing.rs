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
