//! Ports for the servers the tests and benchmarks start.
//!
//! Asking the kernel for port 0 and releasing it returns a port from the
//! ephemeral range, the one the kernel also gives every outgoing
//! connection. Between the release and the server's bind, a client or peer
//! link of another test could take it, and the server would stop with
//! "address in use". So ports come from below that range, where no
//! outgoing connection lands: each process starts at its own place (from
//! its PID) and takes them in turn, skipping any already bound.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: above the well-known and most registered ones.
const LOWEST: u32 = 10_000;

/// A port on 127.0.0.1 that nothing listens on now and that the kernel does
/// not give to outgoing connections.
pub fn free_port() -> u16 {
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let (low, high) = ephemeral_range();
    // The span below the ephemeral range, or above it if that is larger.
    let (first, span) = if low.saturating_sub(LOWEST) >= 65_535u32.saturating_sub(high) {
        (LOWEST, low.saturating_sub(LOWEST))
    } else {
        (high + 1, 65_535 - high)
    };
    assert!(span >= 1_000, "no room outside the ephemeral ports {low}-{high}");
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = (start + TAKEN.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(first + offset).expect("a port fits in 16 bits");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("every port from {first} to {} is in use", first + span - 1)
}

/// The kernel's ephemeral port range (Linux's default if unreadable).
fn ephemeral_range() -> (u32, u32) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = text.split_whitespace().filter_map(|n| n.parse::<u32>().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) if low <= high && high <= 65_535 => (low, high),
        _ => (32_768, 60_999),
    }
}
