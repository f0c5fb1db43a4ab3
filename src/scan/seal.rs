//! Sealing quarantined messages: envelope encryption.
//!
//! Each quarantined message gets its own random 256-bit data key. The message is compressed
//! (zstd), then encrypted with XChaCha20-Poly1305 under that data key; the data key itself is
//! sealed with the archiver's sealing key (`SealingKeys::seal`, the `enc:v1` format). Why this
//! and not a key derived from the sealing key:
//! - rotating the sealing key re-wraps 32-byte data keys, never re-encrypts whole messages;
//! - one message's key opens nothing else, and deleting a row destroys its key;
//! - the data key is bound to the row (its associated data names the row), and so is the
//!   message, so neither can be moved onto another row and still open.

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::secrets::{SealingKeys, SecretError};

const NONCE_LEN: usize = 24;
const ZSTD_LEVEL: i32 = 3;

/// A message sealed for the quarantine table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMessage {
    /// The data key, sealed with the sealing key (`enc:v1:<key-id>:…`).
    pub wrapped_key: String,
    /// nonce ‖ XChaCha20-Poly1305(zstd(message)) ‖ tag.
    pub ciphertext: Vec<u8>,
}

/// Seals `raw` for the row named by `row_context` (e.g. `quarantine:<id>:<sha256>`).
pub fn seal_message(keys: &SealingKeys, raw: &[u8], row_context: &str) -> SealedMessage {
    let mut data_key = Zeroizing::new([0u8; 32]);
    getrandom::fill(data_key.as_mut_slice()).expect("the operating system's random source failed");
    let cipher = XChaCha20Poly1305::new_from_slice(data_key.as_slice())
        .expect("a 32-byte key is always the right length");
    let compressed = Zeroizing::new(
        zstd::bulk::compress(raw, ZSTD_LEVEL).expect("zstd compression of a buffer cannot fail"),
    );
    let nonce = XNonce::generate();
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &compressed,
                aad: row_context.as_bytes(),
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
    let mut ciphertext = Vec::with_capacity(NONCE_LEN + ct.len());
    ciphertext.extend_from_slice(nonce.as_slice());
    ciphertext.extend_from_slice(&ct);
    SealedMessage {
        wrapped_key: keys.seal(data_key.as_slice(), &key_context(row_context)),
        ciphertext,
    }
}

/// Opens a message sealed by [`seal_message`] for the same row.
pub fn open_message(
    keys: &SealingKeys,
    sealed: &SealedMessage,
    row_context: &str,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let data_key = keys.open(&sealed.wrapped_key, &key_context(row_context))?;
    let cipher = XChaCha20Poly1305::new_from_slice(&data_key).map_err(|_| SecretError::Tampered)?;
    if sealed.ciphertext.len() < NONCE_LEN {
        return Err(SecretError::Tampered);
    }
    let (nonce, body) = sealed.ciphertext.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Tampered)?;
    let compressed = Zeroizing::new(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: row_context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)?,
    );
    // Streaming decode: allocates what the message needs, not a fixed upper bound. The input
    // was authenticated above, so it is our own compressed data.
    zstd::stream::decode_all(compressed.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Tampered)
}

/// Re-wraps a message's data key under the current sealing key (key rotation): the message
/// bytes stay as they are.
pub fn rewrap_key(
    keys: &SealingKeys,
    wrapped_key: &str,
    row_context: &str,
) -> Result<String, SecretError> {
    let data_key = keys.open(wrapped_key, &key_context(row_context))?;
    Ok(keys.seal(&data_key, &key_context(row_context)))
}

/// The data key's associated data differs from the message's, so the two cannot be swapped.
fn key_context(row_context: &str) -> String {
    format!("{row_context}:data-key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SealingKeys {
        SealingKeys::new(&[7u8; 32])
    }

    #[test]
    fn a_sealed_message_opens_only_for_its_own_row() {
        let raw = b"Subject: hi\r\n\r\nX5O!P%@AP body".repeat(20);
        let sealed = seal_message(&keys(), &raw, "quarantine:a:abc");
        assert!(
            !sealed.ciphertext.windows(8).any(|w| w == b"Subject:"),
            "the stored bytes must not contain the plaintext"
        );
        assert_eq!(
            open_message(&keys(), &sealed, "quarantine:a:abc")
                .unwrap()
                .as_slice(),
            raw.as_slice()
        );
        assert!(open_message(&keys(), &sealed, "quarantine:b:abc").is_err());
    }

    #[test]
    fn each_message_gets_its_own_data_key() {
        let a = seal_message(&keys(), b"same", "ctx");
        let b = seal_message(&keys(), b"same", "ctx");
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_flipped_bit_or_another_sealing_key_does_not_open() {
        let mut sealed = seal_message(&keys(), b"message", "ctx");
        let other = SealingKeys::new(&[8u8; 32]);
        assert!(matches!(
            open_message(&other, &sealed, "ctx"),
            Err(SecretError::UnknownKey(_))
        ));
        let last = sealed.ciphertext.len() - 1;
        sealed.ciphertext[last] ^= 1;
        assert!(matches!(
            open_message(&keys(), &sealed, "ctx"),
            Err(SecretError::Tampered)
        ));
    }
}
