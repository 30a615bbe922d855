//! Command-line arguments: a scenario name, then `--name value` pairs.

use std::collections::HashMap;
use std::str::FromStr;

/// Shown on a usage error.
pub const USAGE: &str =
    "usage: loadgen <connections|relay|churn|bootstrap|attacks|raw-idle|device-relay|peerjs-idle|peerjs-relay|storm> --addr HOST:PORT [--server-pid PID] [--label NAME]
  connections: --peers N (1000) --concurrency C (256) --hold-secs S (5)
  relay:       --pairs P (50) --rates R1,R2,.. per sender per second (100) --secs S (5) --drain-secs D (10)
  churn:       --clients C (200) --secs S (10) --room-size K (4)
  bootstrap:   --workers W (10) --requests N (20000) --key KEY (bench-key)
  attacks:     --tokens ATTACKER,VICTIM,CANARY_A,CANARY_B (JWTs; none: open server) --only devices,slow,lists,sessions
               --canary-rate R (10) --settle-secs S (20) --signals N (1024) --signal-bytes B (63000) --receivers R (8)
               --offers N (4096) --offer-bytes B (60000) --read-secs S (3)
               --rooms N (1000) --list-requests N (1500) --silent-hold-secs S (45) --silent-clients N (1)
               --handshakes N (2000) --connect-timeout-secs S (10) --big-heads N (500) --head-bytes B (390000)
               --idle N (300) --half-sent N (50) --header-timeout-secs S (10)
  raw-idle:    --peers N (1000) --concurrency C (256) --hold-secs S (16) --announce true|false (false)
  device-relay: --via raw|devices|room (raw) --pairs K (50) --signals M per sender (2000) --window W (8) --secs S (60)
  peerjs-idle: --peers N (1000) --concurrency C (256) --hold-secs S (20) --path P (/peerjs) --key K (peerjs)
  peerjs-relay: --pairs P (50) --rates R1,R2,.. per sender per second (100) --secs S (5) --warmup-secs W (2)
               --drain-secs D (10) --p99-bound-ms B (100) --split true|false (true)
               --path P (/peerjs) --key K (peerjs)
  storm:       --peers N (1000) --cycles C (3) --concurrency K (256) --hold-secs S (2) --close fin|rst (fin)
               --settle-secs S1,S2 after the first and last cycle (10,40) --redis HOST:PORT (INFO memory)
               --gone-timeout-secs S (60) --grace-timeout-secs S (120)";

/// Parsed arguments.
#[derive(Clone)]
pub struct Args {
    /// `connections`, `relay` or `churn`.
    pub scenario: String,
    values: HashMap<String, String>,
}

impl Args {
    /// From the process arguments.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::args().skip(1))
    }

    /// From `raw`: the scenario, then `--name value` pairs.
    pub fn parse(mut raw: impl Iterator<Item = String>) -> Result<Self, String> {
        let scenario = raw.next().ok_or("missing the scenario")?;
        let mut values = HashMap::new();
        while let Some(flag) = raw.next() {
            let name = flag.strip_prefix("--").ok_or_else(|| format!("expected --name, got {flag:?}"))?;
            let value = raw.next().ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name.to_owned(), value);
        }
        Ok(Self { scenario, values })
    }

    /// `--name` parsed, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: cannot parse {v:?}")),
        }
    }

    /// `--name` as a comma-separated list.
    pub fn list<T: FromStr + Clone>(&self, name: &str, default: &[T]) -> Result<Vec<T>, String> {
        match self.values.get(name) {
            None => Ok(default.to_vec()),
            Some(v) => {
                v.split(',').map(|x| x.trim().parse().map_err(|_| format!("--{name}: cannot parse {x:?}"))).collect()
            }
        }
    }

    /// The server address (`--addr`, default `127.0.0.1:4000`).
    pub fn addr(&self) -> String {
        self.values.get("addr").cloned().unwrap_or_else(|| "127.0.0.1:4000".into())
    }

    /// The server's pid, when given: memory and CPU figures need it.
    pub fn server_pid(&self) -> Result<Option<u32>, String> {
        self.values.get("server-pid").map(|v| v.parse().map_err(|_| format!("--server-pid: {v:?}"))).transpose()
    }

    /// A label copied into the output (which server this is).
    pub fn label(&self) -> String {
        self.values.get("label").cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_lists_parse_and_defaults_fill_in() {
        let raw = ["relay", "--pairs", "7", "--rates", "10, 20,40"].map(String::from);
        let args = Args::parse(raw.into_iter()).unwrap();
        assert_eq!(args.scenario, "relay");
        assert_eq!(args.get("pairs", 1u32), Ok(7));
        assert_eq!(args.get("secs", 5u32), Ok(5));
        assert_eq!(args.list("rates", &[1u32]), Ok(vec![10, 20, 40]));
        assert!(args.get::<u32>("rates", 0).is_err());
        assert!(Args::parse(["relay", "pairs"].map(String::from).into_iter()).is_err());
    }
}
