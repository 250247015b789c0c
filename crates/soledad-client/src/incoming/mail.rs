//! The example consumer: each message becomes one
//! `{"type": "mail", "subject", "from", "date"}` document, from its RFC 5322
//! header fields (unfolded; encoded words are kept as sent).

use serde_json::{Value, json};

use super::processor::{ConsumerError, IncomingBoxConsumer};

/// The version of [`MailConsumer`].
pub const MAIL_CONSUMER_VERSION: u64 = 1;

/// Longest header section read.
const MAX_HEADER_BYTES: usize = 256 * 1024;

/// Stores each message as a `mail` document (subject, from, date).
#[derive(Debug, Clone, Copy, Default)]
pub struct MailConsumer;

/// The header fields of an RFC 5322 message, names lower-cased, folded lines
/// joined, in order.
///
/// # Errors
/// [`ConsumerError`] if the header section is not UTF-8, has no end (blank
/// line or end of input within 256 KiB), or a line is not a field.
pub fn parse_mail_headers(message: &[u8]) -> Result<Vec<(String, String)>, ConsumerError> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    if end > MAX_HEADER_BYTES {
        return Err(ConsumerError::new("mail header section too long"));
    }
    let head = message.get(..end).unwrap_or_default();
    let text = std::str::from_utf8(head).map_err(ConsumerError::new)?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(ConsumerError::new("continuation before the first field"));
            };
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ConsumerError::new("not a mail header field"));
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConsumerError::new("bad mail header field name"));
        }
        fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(fields)
}

impl IncomingBoxConsumer for MailConsumer {
    fn version(&self) -> u64 {
        MAIL_CONSUMER_VERSION
    }

    fn process(&self, _message_id: &str, plaintext: &[u8]) -> Result<Vec<Value>, ConsumerError> {
        let fields = parse_mail_headers(plaintext)?;
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| Value::String(v.clone()))
                .unwrap_or(Value::Null)
        };
        if field("from").is_null() {
            return Err(ConsumerError::new("mail without a From field"));
        }
        Ok(vec![json!({
            "type": "mail",
            "subject": field("subject"),
            "from": field("from"),
            "date": field("date"),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unfolded_and_the_body_ignored() {
        let mail = b"From: Alice <a@example.org>\r\nSubject: a long\r\n  subject\r\n\
                     Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\nSubject: not a header\r\n";
        let docs = MailConsumer.process("m", mail).unwrap();
        assert_eq!(
            docs,
            [json!({"type": "mail", "subject": "a long subject",
                    "from": "Alice <a@example.org>", "date": "Mon, 30 Nov 2026 10:00:00 +0000"})]
        );
    }

    #[test]
    fn junk_fails() {
        assert!(MailConsumer.process("m", b"no colon here\r\n\r\n").is_err());
        assert!(
            MailConsumer
                .process("m", b"Subject: no sender\r\n\r\n")
                .is_err()
        );
        assert!(
            MailConsumer
                .process("m", &[0xff, 0xfe, b':', b'\n', b'\n'])
                .is_err()
        );
    }
}
