//! A frame header announcing 64 MiB, with no body, must not make the server
//! allocate 64 MiB: buffers grow only as bytes arrive.

use reqwest::StatusCode;
use soledad_protocol::{ExchangeRequestHeader, Frame, FrameKind, MAX_FRAME_LEN, SYNC_CONTENT_TYPE};

use crate::util::{ServerProcess, UUID};

/// `VmPeak` (peak virtual size) and `VmHWM` (peak resident size) in KiB.
fn peaks(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmPeak:"), field("VmHWM:"))
}

/// A request header frame, then a document frame header announcing
/// `announced` bytes, then the end of the body.
fn hostile_body(announced: u32) -> Vec<u8> {
    let mut body = Vec::new();
    Frame::RequestHeader(ExchangeRequestHeader {
        last_known_generation: 0,
        last_known_trans_id: String::new(),
        ensure: true,
    })
    .encode(&mut body)
    .unwrap();
    body.push(FrameKind::Doc as u8);
    body.extend_from_slice(&announced.to_be_bytes());
    body
}

async fn post(server: &ServerProcess, body: Vec<u8>) -> StatusCode {
    server
        .client
        .post(server.url(&format!("/user-{UUID}/sync-from/hostile-replica")))
        .header("authorization", server.authorization())
        .header("content-type", SYNC_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_frame_header_without_body_does_not_grow_the_server() {
    // One malloc arena: a large allocation shows in VmPeak, not arena noise.
    let server = ServerProcess::start_with_env("", &[("MALLOC_ARENA_MAX", "1")]).await;
    // Warm up every path the hostile request takes (store open, worker thread).
    for _ in 0..3 {
        let status = post(&server, hostile_body(16)).await;
        assert!(status.is_client_error(), "{status}");
    }
    let (peak_before, hwm_before) = peaks(server.pid());
    for _ in 0..4 {
        let status = post(&server, hostile_body(MAX_FRAME_LEN)).await;
        assert!(
            status.is_client_error(),
            "a cut stream is refused: {status}"
        );
    }
    let (peak_after, hwm_after) = peaks(server.pid());
    let virtual_growth_mib = peak_after.saturating_sub(peak_before) / 1024;
    let resident_growth_mib = hwm_after.saturating_sub(hwm_before) / 1024;
    assert!(
        virtual_growth_mib < 32,
        "peak virtual size grew by {virtual_growth_mib} MiB"
    );
    assert!(
        resident_growth_mib < 4,
        "peak resident size grew by {resident_growth_mib} MiB"
    );
    // Still serving.
    assert_eq!(server.used_bytes().await, 0);
}
