//! The incoming box's client side: consumers registered per namespace, and the
//! processing loop that turns delivered messages into documents.
//!
//! One pass ([`IncomingProcessor::process_incoming`]) lists the pending
//! messages (oldest first), and for each: claims it on the server (so no other
//! device processes it meanwhile), downloads it, opens its age seal with the
//! incoming identity derived from the storage secret, hands the plaintext to
//! the consumer's [`process`](IncomingBoxConsumer::process), [`save`s](IncomingBoxConsumer::save)
//! the result as documents whose ids are derived from the message id (a
//! second processing after an expired claim rewrites the same documents, it
//! never duplicates them). Once every saved document is synced to the server,
//! the messages are marked `PROCESSED` (the server deletes them); a message
//! the consumer (or the seal) fails on is marked `FAILED` with the consumer's
//! version, so only a newer version retries it. `docs/incoming.md` has the
//! protocol.

mod mail;
mod processor;
mod wire;

pub use mail::{MAIL_CONSUMER_VERSION, MailConsumer, parse_mail_headers};
pub use processor::{
    ConsumerError, INCOMING_NAMESPACE, IncomingBoxConsumer, IncomingLoop, IncomingProcessor,
    IncomingProgress, IncomingReport, MAX_INCOMING_MESSAGE_BYTES, incoming_doc_id,
};
