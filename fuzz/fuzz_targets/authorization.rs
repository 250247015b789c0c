//! `Authorization` header as the server's authentication middleware reads it: any
//! accepted value names a non-empty id without `:` and a non-empty token, and the
//! header the client library writes for those credentials is read back to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soledad_protocol::AuthHeader;
use soledad_server::fuzzing::authorization;

fuzz_target!(|data: &[u8]| {
    let Some(Ok(Some((id, token)))) = authorization(data) else {
        return;
    };
    assert!(!id.is_empty() && !id.contains(':') && !token.is_empty());
    let header = AuthHeader {
        uuid: id.clone(),
        token: token.clone(),
    }
    .to_header_value();
    if header.len() <= 1024 {
        let again = authorization(header.as_bytes());
        assert!(matches!(again, Some(Ok(Some(ref c))) if *c == (id.clone(), token.clone())));
        let parsed = AuthHeader::parse(&header).ok();
        assert_eq!(parsed.map(|h| (h.uuid, h.token)), Some((id, token)));
    }
});
