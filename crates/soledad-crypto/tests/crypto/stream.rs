//! Blob stream: round trips through every adapter, tamper rejection, random access.

use std::io::Read as _;

use proptest::prelude::*;
use soledad_crypto::{
    AsyncDecryptReader, AsyncEncryptReader, BlobKey, DecryptReader, EncryptReader, Error, Preamble,
    SEALED_SEGMENT_SIZE, SEGMENT_SIZE, Scheme, StorageSecret, decrypt_blob, decrypt_blob_async,
    encrypt_blob, encrypt_blob_async,
};
use tokio::io::AsyncReadExt as _;

use crate::util::{Trickle, pattern};

fn key() -> BlobKey {
    StorageSecret::from_bytes([5; 64]).blob_key()
}

fn seal(data: &[u8], id: &str) -> Vec<u8> {
    let mut stored = Vec::new();
    encrypt_blob(&key(), id, data.len() as u64, data, &mut stored).unwrap();
    stored
}

fn open(stored: &[u8], id: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    decrypt_blob(&key(), id, stored, &mut out)?;
    Ok(out)
}

const SIZES: [usize; 7] = [
    0,
    1,
    1000,
    SEGMENT_SIZE - 1,
    SEGMENT_SIZE,
    SEGMENT_SIZE + 1,
    3 * SEGMENT_SIZE + 17,
];

#[test]
fn helpers_round_trip_and_lengths() {
    for size in SIZES {
        let data = pattern(size);
        let stored = seal(&data, "b1");
        let (preamble, used) = Preamble::parse(&stored).unwrap();
        assert_eq!(preamble.scheme(), Scheme::Symkey);
        assert_eq!(preamble.plaintext_size(), size as u64);
        assert_eq!(preamble.blob_id(), "b1");
        assert_eq!(
            (stored.len() - used) as u64,
            preamble.body_len(),
            "size {size}"
        );
        assert_eq!(open(&stored, "b1").unwrap(), data, "size {size}");
    }
}

#[test]
fn readers_round_trip_with_partial_reads() {
    for size in SIZES {
        let data = pattern(size);
        let mut enc = EncryptReader::new(
            &key(),
            "b2",
            size as u64,
            Trickle {
                data: &data,
                chunk: 7777,
            },
        )
        .unwrap();
        let expected_len = enc.stored_len();
        let mut stored = Vec::new();
        // Small output buffer on purpose.
        let mut buf = [0u8; 3000];
        loop {
            let n = enc.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            stored.extend_from_slice(&buf[..n]);
        }
        assert_eq!(stored.len() as u64, expected_len);
        let mut dec = DecryptReader::new(
            &key(),
            "b2",
            Trickle {
                data: &stored,
                chunk: 4099,
            },
        );
        let mut plain = Vec::new();
        dec.read_to_end(&mut plain).unwrap();
        assert_eq!(plain, data, "size {size}");
        assert_eq!(dec.preamble().unwrap().plaintext_size(), size as u64);
    }
}

#[tokio::test]
async fn async_adapters_round_trip_and_match_sync_format() {
    for size in SIZES {
        let data = pattern(size);
        let mut stored = Vec::new();
        let preamble = encrypt_blob_async(&key(), "b3", size as u64, &data[..], &mut stored)
            .await
            .unwrap();
        assert_eq!(preamble.plaintext_size(), size as u64);
        // Sync and async decryptors accept the same bytes.
        assert_eq!(open(&stored, "b3").unwrap(), data);
        let mut plain = Vec::new();
        decrypt_blob_async(&key(), "b3", &stored[..], &mut plain)
            .await
            .unwrap();
        assert_eq!(plain, data);
        let mut reader = AsyncEncryptReader::new(&key(), "b3", size as u64, &data[..]).unwrap();
        let mut stored2 = Vec::new();
        reader.read_to_end(&mut stored2).await.unwrap();
        let mut dec = AsyncDecryptReader::new(&key(), "b3", &stored2[..]);
        let mut plain2 = Vec::new();
        dec.read_to_end(&mut plain2).await.unwrap();
        assert_eq!(plain2, data);
    }
}

#[tokio::test]
async fn async_decrypt_reports_typed_integrity_error() {
    let mut stored = seal(&pattern(5000), "b4");
    let last = stored.len() - 1;
    stored[last] ^= 1;
    let mut out = Vec::new();
    let err = decrypt_blob_async(&key(), "b4", &stored[..], &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity), "{err:?}");
}

#[test]
fn plaintext_size_must_match_declaration() {
    let data = pattern(100);
    let mut out = Vec::new();
    assert!(matches!(
        encrypt_blob(&key(), "b", 101, &data[..], &mut out),
        Err(Error::SizeMismatch)
    ));
    let mut out = Vec::new();
    assert!(matches!(
        encrypt_blob(&key(), "b", 99, &data[..], &mut out),
        Err(Error::SizeMismatch)
    ));
}

#[test]
fn wrong_blob_id_and_external_blobs() {
    let stored = seal(b"hello", "b5");
    assert!(matches!(open(&stored, "b6"), Err(Error::Integrity)));
    assert!(matches!(
        key().encryptor("a/b", 1),
        Err(Error::InvalidBlobId)
    ));
    let mut external = Preamble::external("mx-1", 3).unwrap().to_bytes();
    external.extend_from_slice(b"pgp");
    let (p, used) = Preamble::parse(&external).unwrap();
    assert_eq!(
        (p.scheme(), p.blob_id(), p.plaintext_size(), used),
        (Scheme::External, "mx-1", 3, external.len() - 3)
    );
    assert_eq!(p.body_len(), 3);
    assert!(matches!(open(&external, "mx-1"), Err(Error::ExternalBlob)));
    assert!(matches!(
        Preamble::external("", 1),
        Err(Error::InvalidBlobId)
    ));
    assert!(matches!(
        Preamble::external(&"x".repeat(256), 1),
        Err(Error::InvalidBlobId)
    ));
}

#[test]
fn random_access_to_a_plaintext_range() {
    let data = pattern(4 * SEGMENT_SIZE + 123);
    let stored = seal(&data, "ra");
    let (preamble, used) = Preamble::parse(&stored).unwrap();
    let body = &stored[used..];
    let dec = key().decryptor(&preamble, "ra").unwrap();
    for (start, end) in [
        (0u64, 1u64),
        (65_000, 70_000),
        (131_072, 131_073),
        (200_000, u64::MAX),
        (5, 5),
    ] {
        let span = preamble.segment_span(start, end);
        if start >= end {
            assert!(span.is_none());
            continue;
        }
        let span = span.unwrap();
        let mut plain = Vec::new();
        let mut offset = span.body_start as usize;
        for index in span.first_segment..=span.last_segment {
            let len = SEALED_SEGMENT_SIZE.min(span.body_end as usize - offset);
            let mut seg = body[offset..offset + len].to_vec();
            dec.open_segment(index, &mut seg).unwrap();
            plain.extend_from_slice(&seg);
            offset += len;
        }
        assert_eq!(offset as u64, span.body_end);
        let end = end.min(data.len() as u64) as usize;
        let skip = span.skip as usize;
        assert_eq!(
            &plain[skip..skip + end - start as usize],
            &data[start as usize..end]
        );
    }
    // A segment opened at the wrong index fails.
    let mut seg0 = body[..SEALED_SEGMENT_SIZE].to_vec();
    assert!(matches!(
        dec.open_segment(1, &mut seg0),
        Err(Error::Integrity)
    ));
}

#[test]
fn huge_declared_sizes_do_not_overflow() {
    // A preamble from the network may declare any size.
    let mut bytes = key()
        .encryptor("big", 10)
        .unwrap()
        .preamble_bytes()
        .to_vec();
    let size_at = 6 + 3;
    bytes[size_at..size_at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    let (preamble, _) = Preamble::parse(&bytes).unwrap();
    assert_eq!(preamble.plaintext_size(), u64::MAX);
    assert_eq!(preamble.segment_span(0, u64::MAX), None);
    assert_eq!(preamble.body_len(), u64::MAX);
    assert!(matches!(
        key().decryptor(&preamble, "big"),
        Err(Error::TooLarge { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trip_any_size(size in 0usize..(2 * SEGMENT_SIZE + 100)) {
        let data = pattern(size);
        prop_assert_eq!(open(&seal(&data, "p"), "p").unwrap(), data);
    }

    #[test]
    fn any_bit_flip_is_rejected(size in 0usize..(SEGMENT_SIZE + 300), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut stored = seal(&pattern(size), "p");
        let i = pos.index(stored.len());
        stored[i] ^= 1 << bit;
        prop_assert!(open(&stored, "p").is_err());
    }

    #[test]
    fn truncation_is_rejected(size in 0usize..(2 * SEGMENT_SIZE + 300), cut in any::<prop::sample::Index>()) {
        let stored = seal(&pattern(size), "p");
        let keep = cut.index(stored.len());
        prop_assert!(open(&stored[..keep], "p").is_err());
    }

    #[test]
    fn extension_is_rejected(size in 0usize..(SEGMENT_SIZE + 300), extra in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut stored = seal(&pattern(size), "p");
        stored.extend_from_slice(&extra);
        prop_assert!(matches!(open(&stored, "p"), Err(Error::Integrity)));
    }

    #[test]
    fn wrong_blob_id_is_rejected(id in "[a-z0-9]{1,12}", other in "[a-z0-9]{1,12}") {
        prop_assume!(id != other);
        let stored = seal(b"data", &id);
        prop_assert!(matches!(open(&stored, &other), Err(Error::Integrity)));
    }
}
