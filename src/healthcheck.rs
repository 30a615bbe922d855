//! `switchboard healthcheck`: asks the local server's `/health` and exits 0 on
//! 200, 1 otherwise. The Docker `HEALTHCHECK` uses it, so the runtime image
//! needs no curl.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// Checks `http://127.0.0.1:PORT/health`.
pub fn run(config: &Config) -> ExitCode {
    match check(SocketAddr::from((Ipv4Addr::LOCALHOST, config.port))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("switchboard healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

fn check(addr: SocketAddr) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    match &head[9..12] {
        b"200" => Ok(()),
        status => Err(format!("/health answered {}", String::from_utf8_lossy(status))),
    }
}
