//! Google service accounts with domain-wide delegation: the JWT bearer grant (RFC 7523). The
//! assertion names the service account (`iss`), the mailbox it acts for (`sub`), the scope and
//! the token endpoint (`aud`), valid for an hour, signed RS256 with the account's private key.

use base64::prelude::*;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::{Settings, read_secret_file};
use crate::error::{Error, Result};

/// `grant_type` of the JWT bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const KEY_SETTING: &str = "google.service_account_key_file";

/// The fields of a service account key file (JSON from the Google Cloud console) used here.
#[derive(Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    #[serde(default)]
    pub private_key_id: String,
    private_key: String,
}

impl Drop for ServiceAccountKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

impl ServiceAccountKey {
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let text = read_secret_file(KEY_SETTING, &settings.google.service_account_key_file)?;
        Self::parse(&text)
    }

    pub fn parse(json: &str) -> Result<Self> {
        let key: Self = serde_json::from_str(json).map_err(|e| {
            Error::invalid(
                KEY_SETTING,
                format!("is not a service account key file: {e}"),
            )
        })?;
        // Fail at once on a key that cannot sign, not at the first sync.
        key.signer()?;
        Ok(key)
    }

    fn signer(&self) -> Result<ring::signature::RsaKeyPair> {
        let der = pem_body(&self.private_key).ok_or_else(|| {
            Error::invalid(
                KEY_SETTING,
                "private_key is not a PEM \"PRIVATE KEY\" block",
            )
        })?;
        ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| Error::invalid(KEY_SETTING, format!("private_key is not an RSA key: {e}")))
    }

    /// A signed assertion asking `audience` for a token of `scope` acting as `subject`.
    pub fn assertion(&self, scope: &str, audience: &str, subject: &str) -> Result<String> {
        if subject.trim().is_empty() {
            return Err(Error::invalid(
                "mailbox",
                "a service account needs the mailbox address it acts for",
            ));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": subject.trim(),
            "scope": scope,
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            BASE64_URL_SAFE_NO_PAD.encode(header.to_string()),
            BASE64_URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = self.signer()?;
        let mut signature = vec![0; signer.public().modulus_len()];
        signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Internal("RS256 signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            BASE64_URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// The DER bytes of the first PEM block of type PRIVATE KEY.
fn pem_body(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem[start..].find("-----END PRIVATE KEY-----")? + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64_STANDARD.decode(b64).ok().map(Zeroizing::new)
}
