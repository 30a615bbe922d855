//! `loadgen`: drives a socket.io signaling server (switchboard, or the Node
//! reference in `bench/node-reference`), or a PeerJS one (switchboard's
//! endpoint, or the reference `peer` there) with one of its scenarios and prints
//! one JSON line of figures; `attacks` measures what one attacker can make
//! switchboard hold (issue 17; run by `bench/attack`).
//!
//! ```text
//! loadgen connections --addr 127.0.0.1:4000 --server-pid PID --peers 19500
//! loadgen relay       --addr 127.0.0.1:4000 --server-pid PID --pairs 50 --rates 100,200,400
//! loadgen churn       --addr 127.0.0.1:4000 --server-pid PID --clients 200 --secs 10
//! loadgen bootstrap   --addr 127.0.0.1:4000 --workers 10 --requests 20000 --key KEY
//! loadgen attacks     --addr 127.0.0.1:4000 --server-pid PID --tokens A,V,C1,C2
//! loadgen raw-idle    --addr 127.0.0.1:4000 --server-pid PID --peers 10000 --hold-secs 16
//! loadgen device-relay --addr 127.0.0.1:4000 --server-pid PID --via raw|devices|room --pairs 50
//! loadgen peerjs-idle  --addr 127.0.0.1:9000 --server-pid PID --peers 10000 --hold-secs 20
//! loadgen peerjs-relay --addr 127.0.0.1:9000 --server-pid PID --pairs 500 --rates 10,20,40
//! loadgen storm        --addr 127.0.0.1:4000 --server-pid PID --peers 19500 --cycles 3 [--redis 127.0.0.1:6390]
//! ```
//!
//! It runs on one thread (a current-thread runtime): `bench/compare` pins it to
//! one core and the server to the other, so what it can offer is what one core
//! of websocket clients can do; the JSON says when it fell behind.

mod args;
mod attack;
mod bootstrap;
mod churn;
mod connections;
mod hold;
mod http;
mod peerjs;
mod procfs;
mod raw;
mod relay;
mod sio;
mod stats;
mod storm;
mod sweep;

use std::process::ExitCode;

use args::Args;

fn main() -> ExitCode {
    let args = match Args::from_env() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match args.scenario.as_str() {
            "connections" => connections::run(&args).await,
            "relay" => relay::run(&args).await,
            "churn" => churn::run(&args).await,
            "bootstrap" => bootstrap::run(&args).await,
            "attacks" => attack::run(args.clone()).await,
            "raw-idle" => raw::idle::run(&args).await,
            "device-relay" => raw::relay::run(&args).await,
            "peerjs-idle" => peerjs::idle::run(&args).await,
            "peerjs-relay" => peerjs::relay::run(&args).await,
            "storm" => storm::run(&args).await,
            other => Err(format!("unknown scenario {other:?}").into()),
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
