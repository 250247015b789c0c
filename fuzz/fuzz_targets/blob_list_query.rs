//! Query string of `GET /blobs/{uuid}` (namespace, filter_flag, order_by, deleted,
//! only_count): an accepted query re-encodes to one that is read back identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_server::blobs::Order;
use soledad_server::fuzzing::blob_list_query;

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(Ok((query, only_count))) = blob_list_query(text) else {
        return;
    };
    let mut again = format!(
        "namespace={}&deleted={}&only_count={}",
        escape(query.namespace.as_str()),
        query.deleted,
        only_count
    );
    if let Some(flag) = query.filter_flag {
        again.push_str(&format!("&filter_flag={}", escape(flag.as_str())));
    }
    match query.order {
        Some(Order::DateAscending) => again.push_str("&order_by=%2Bdate"),
        Some(Order::DateDescending) => again.push_str("&order_by=-date"),
        None => {}
    }
    let reread = blob_list_query(&again);
    assert!(
        matches!(&reread, Some(Ok((q, c))) if *q == query && *c == only_count),
        "{again} read back as {reread:?}"
    );
});
