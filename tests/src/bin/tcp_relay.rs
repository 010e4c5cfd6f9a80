//! `underpass-tcp-relay`: a do-nothing TCP relay, the reference path of `underpass-bench`.
//!
//! Accepts connections on `--listen` and, for each one, opens a connection to `--to` and copies
//! bytes both ways until either side is done. No parsing, no TLS, no multiplexing: two of these
//! chained (load generator → relay 1 → relay 2 → echo backend) show the floor that *any*
//! two-process tunnel pays on this machine (two extra TCP hops and two more processes to wake
//! up per request), so the tunnel's figures can be read against it.
//!
//! One current-thread tokio runtime (like the tunnel's processes, one thread does all the
//! work). Loopback only. Network errors never stop the relay: they are logged and only that
//! connection is dropped.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::net::{TcpSocket, TcpStream};

/// Bound on connecting upstream; a loopback connect either succeeds or fails at once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Listen backlog. `TcpListener::bind` uses 128, which a benchmark opening 256 connections at
/// once overflows: the kernel then drops handshakes and the client retries a second later.
const BACKLOG: u32 = 1024;

#[derive(Debug, Parser)]
#[command(
    name = "underpass-tcp-relay",
    version,
    about = "Byte-copying TCP relay (reference path for benchmarks)"
)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long)]
    listen: SocketAddr,
    /// Address to relay every accepted connection to.
    #[arg(long)]
    to: SocketAddr,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("underpass-tcp-relay: refusing to listen on a non-loopback address");
        return std::process::ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("underpass-tcp-relay: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args.listen, args.to)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("underpass-tcp-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, to: SocketAddr) -> std::io::Result<()> {
    let socket = if listen.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(BACKLOG)?;
    // Printed once the socket listens (connections queue from here on): the benchmark waits
    // for this line before it starts the next hop or sends traffic.
    println!(
        "underpass-tcp-relay listening on {} (to {to})",
        listener.local_addr()?
    );
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // An error (e.g. the next hop refusing) costs only this connection; the client sees it
        // closed. Hence the benchmark starts the chain from its far end, waiting for each hop.
        tokio::spawn(async move {
            if let Err(e) = relay(inbound, to).await {
                eprintln!("{peer} -> {to}: {e}");
            }
        });
    }
}

async fn relay(mut inbound: TcpStream, to: SocketAddr) -> std::io::Result<()> {
    inbound.set_nodelay(true)?;
    let mut outbound = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
        .map_err(|e| std::io::Error::new(e.kind(), format!("connect: {e}")))?;
    outbound.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}
