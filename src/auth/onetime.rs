//! The tokens of single-use links (invitations, password resets): 256 random bits in the
//! link, only their SHA-256 in the database, so a copy of the database opens no account.

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// A new link token: `text` goes into the link (once), `hash` into the database.
pub struct LinkToken {
    pub text: String,
    pub hash: String,
}

/// 32 bytes from the operating system's random source, base64url without padding.
pub fn generate() -> Result<LinkToken> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for a link: {e}")))?;
    let text = BASE64_URL_SAFE_NO_PAD.encode(bytes);
    Ok(LinkToken {
        hash: hash(&text),
        text,
    })
}

/// What the database stores for `text` (SHA-256, hex). A token is 256 random bits, so a fast
/// hash is enough: there is nothing to guess that a slow one would protect.
pub fn hash(text: &str) -> String {
    super::tokens::hash(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_is_new_and_only_its_hash_matches_it() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.text, b.text);
        assert_eq!(a.text.len(), 43, "256 bits in base64url");
        assert_eq!(hash(&a.text), a.hash);
        assert_ne!(a.hash, a.text);
        assert_ne!(hash(&b.text), a.hash);
    }
}
