//! What the load generator reads of the server process from `/proc`: resident
//! memory and CPU time. Both servers are measured the same way, from outside.

use std::net::SocketAddr;
use std::time::Duration;

/// The resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A KiB figure of `/proc/<pid>/status` by its label (`VmRSS:`, `VmHWM:`, the peak RSS).
pub fn status_kib(pid: u32, label: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(label))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Memory per peer in bytes: the RSS grown from `before` to `holding`
/// (KiB) over `peers`; `null` without both readings or any peer.
pub fn bytes_per_peer(before: Option<u64>, holding: Option<u64>, peers: usize) -> serde_json::Value {
    match (before, holding) {
        (Some(b), Some(h)) if peers > 0 => serde_json::json!((h.saturating_sub(b) * 1024) / peers as u64),
        _ => serde_json::Value::Null,
    }
}

/// User plus system CPU time `pid` has used (fields 14 and 15 of `/proc/<pid>/stat`).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / CLOCK_TICKS_PER_SECOND))
}

/// The server's end of the IPv4 TCP connection from `peer` to `server`, as
/// `/proc/net/tcp` shows it: its state (1 established, 4 FIN-WAIT-1, ...),
/// the bytes in its send queue, and whether a process still holds it (an
/// inode; 0 once the process closed it and only the kernel keeps it).
/// `None` when there is no such connection.
pub fn server_tcp(server: SocketAddr, peer: SocketAddr) -> Option<(u8, u64, bool)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => Some(format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port())),
        SocketAddr::V6(_) => None,
    };
    let (local, remote) = (hex(server)?, hex(peer)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) || f.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
        let tx = u64::from_str_radix(f.get(4)?.split(':').next()?, 16).ok()?;
        Some((state, tx, f.get(9)? != &"0"))
    })
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds `pid` used since `before` (a [`cpu_time`] reading), if both readings exist.
pub fn cpu_since(pid: Option<u32>, before: Option<Duration>) -> Option<f64> {
    Some((cpu_time(pid?)? - before?).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(status_kib(me, "VmHWM:").is_some_and(|kib| kib >= rss_kib(me).unwrap_or(0)));
        assert!(cpu_time(me).is_some());
        assert!(rss_kib(u32::MAX).is_none());
        let unused: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(server_tcp(unused, unused).is_none());
    }
}
