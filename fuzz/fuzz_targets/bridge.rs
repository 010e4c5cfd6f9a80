//! The 2024-11-05 bridge's message routing (`underpass_connector::bridge`, pure parts): a
//! script of client POSTs, server lines and GET streams opening and closing. Every response
//! reaches only the stream whose request had its id, at most once; GET streams get no
//! responses.
//!
//! Input: lines, each an operation: `P<n>[s] body` (POST on exchange n, `s` for SSE),
//! `S line` (the server writes a line), `D<n>` (exchange n goes away), `A<n>` / `X<n>` (GET
//! stream n opens / closes), `C` (the server is gone).
#![no_main]

use libfuzzer_sys::fuzz_target;
use underpass_connector::bridge::fuzzing::RouterHarness;

fn number(s: &[u8]) -> u64 {
    s.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, d| {
            n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
        })
}

fuzz_target!(|data: &[u8]| {
    let mut h = RouterHarness::new();
    for line in data.split(|&b| b == b'\n').take(256) {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let n = number(rest);
        let arg = rest
            .iter()
            .position(|&b| b == b' ')
            .map_or(&[][..], |i| &rest[i + 1..]);
        match op {
            b'P' => {
                let sse = rest.iter().take_while(|&&b| b != b' ').any(|&b| b == b's');
                let _ = h.post(n, arg, sse);
            }
            b'S' => h.server_line(arg),
            b'D' => h.drop_exchange(n),
            b'A' => {
                let _ = h.attach(n);
            }
            b'X' => h.detach(n),
            b'C' => h.close(),
            _ => {}
        }
        h.check();
    }
});
