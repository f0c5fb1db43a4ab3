//! Key material: loading the session and sealing keys, generating them on first run, and
//! sealing stored secrets (IMAP passwords, tokens) with XChaCha20-Poly1305.
//!
//! A sealed value reads `enc:v1:<key-id>:<base64(nonce ‖ ciphertext ‖ tag)>`. The key id is a
//! short fingerprint of the key, so a value sealed under an older key is recognised during
//! rotation. The caller passes the row identity as associated data, so a sealed value copied
//! onto another row does not open.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::prelude::*;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::{Secret, SecuritySettings};

const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}")]
    BadKey(String),
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored secret is not in the enc:v1 format")]
    NotSealed,
    #[error(
        "stored secret was sealed with key {0}, which is not loaded; restore that key or re-enter the secret"
    )]
    UnknownKey(String),
    #[error(
        "stored secret does not open with the configured key (wrong key, or the value was altered)"
    )]
    Tampered,
}

impl From<SecretError> for crate::error::Error {
    fn from(e: SecretError) -> Self {
        crate::error::Error::part(e)
    }
}

/// Decodes a key given as base64 of 32 bytes.
pub fn decode_key(text: &str) -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let bytes = Zeroizing::new(
        BASE64_STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey("key is not valid base64".into()))?,
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SecretError::BadKey(format!("key is {} bytes; it must be 32", bytes.len())))?;
    Ok(Zeroizing::new(key))
}

/// A new random key, base64-encoded: what `daygle keygen` prints.
pub fn generate_key() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut_slice()).expect("the operating system's random source failed");
    BASE64_STANDARD.encode(key.as_slice())
}

/// Where a key came from, for the startup log (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    File(PathBuf),
    Generated(PathBuf),
}

/// The keys the archiver needs to run.
pub struct Keys {
    pub session: Zeroizing<[u8; 32]>,
    pub sealing: SealingKeys,
    /// Seals the audit log's chain head (HMAC-SHA-256); never stored in the database.
    pub audit: crate::audit::seal::AuditKey,
    pub session_source: KeySource,
    pub sealing_source: KeySource,
    pub audit_source: KeySource,
}

impl Keys {
    /// Loads each key from the config value, else the configured file, else the data
    /// directory's `secrets/` folder, generating a fresh one there (mode 0600) on first run.
    /// A configured `previous_sealing_key_file` is accepted for opening (key rotation).
    pub fn load(security: &SecuritySettings, data_dir: &Path) -> Result<Self, SecretError> {
        let (session, session_source) = load_one(
            security,
            &security.session_key,
            &security.session_key_file,
            &data_dir.join("secrets").join("session_key"),
        )?;
        let (sealing, sealing_source) = load_one(
            security,
            &security.sealing_key,
            &security.sealing_key_file,
            &data_dir.join("secrets").join("sealing_key"),
        )?;
        let (audit, audit_source) = load_one(
            security,
            &security.audit_key,
            &security.audit_key_file,
            &audit_key_path(data_dir),
        )?;
        let mut sealing_keys = SealingKeys::new(&sealing);
        if !security.previous_sealing_key_file.trim().is_empty() {
            let path = PathBuf::from(security.previous_sealing_key_file.trim());
            let previous = read_key_file(security, &path)?;
            if previous.as_slice() != sealing.as_slice() {
                sealing_keys = sealing_keys.with_previous(&previous);
            }
        }
        Ok(Self {
            session,
            sealing: sealing_keys,
            audit: crate::audit::seal::AuditKey::new(&audit),
            session_source,
            sealing_source,
            audit_source,
        })
    }

    /// The audit key alone, never generated: `daygle verify audit` must check with the key
    /// the server used, so a missing key is an error rather than a fresh one.
    pub fn load_audit_key(
        security: &SecuritySettings,
        data_dir: &Path,
    ) -> Result<crate::audit::seal::AuditKey, SecretError> {
        if !security.audit_key.is_empty() {
            let key = decode_key(security.audit_key.expose())?;
            return Ok(crate::audit::seal::AuditKey::new(&key));
        }
        let path = if security.audit_key_file.trim().is_empty() {
            audit_key_path(data_dir)
        } else {
            PathBuf::from(security.audit_key_file.trim())
        };
        let key = read_key_file(security, &path)?;
        Ok(crate::audit::seal::AuditKey::new(&key))
    }
}

fn audit_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets").join("audit_key")
}

/// Reads a key file; the published example keys are refused there too unless in dev mode.
fn read_key_file(
    security: &SecuritySettings,
    path: &Path,
) -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| SecretError::Io {
        action: "read key file",
        path: path.to_path_buf(),
        source,
    })?);
    let key =
        decode_key(&text).map_err(|e| SecretError::BadKey(format!("{}: {e}", path.display())))?;
    if !security.dev_mode && is_example_key(&key) {
        return Err(SecretError::BadKey(format!(
            "{} holds the published example key; generate your own with `daygle keygen`",
            path.display()
        )));
    }
    Ok(key)
}

fn is_example_key(key: &[u8; 32]) -> bool {
    [
        crate::config::EXAMPLE_SESSION_KEY,
        crate::config::EXAMPLE_SEALING_KEY,
    ]
    .iter()
    .any(|example| decode_key(example).is_ok_and(|k| k.as_slice() == key.as_slice()))
}

fn load_one(
    security: &SecuritySettings,
    value: &Secret,
    file: &str,
    generated_path: &Path,
) -> Result<(Zeroizing<[u8; 32]>, KeySource), SecretError> {
    if !value.is_empty() {
        return Ok((decode_key(value.expose())?, KeySource::Config));
    }
    let (path, source) = if !file.trim().is_empty() {
        let path = PathBuf::from(file.trim());
        (path.clone(), KeySource::File(path))
    } else if generated_path.exists() {
        (
            generated_path.to_path_buf(),
            KeySource::File(generated_path.to_path_buf()),
        )
    } else {
        write_new_key(generated_path)?;
        (
            generated_path.to_path_buf(),
            KeySource::Generated(generated_path.to_path_buf()),
        )
    };
    Ok((read_key_file(security, &path)?, source))
}

fn write_new_key(path: &Path) -> Result<(), SecretError> {
    let io = |action, source| SecretError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restrict permissions of", e))?;
    }
    let key = Zeroizing::new(generate_key());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create key file", e))?;
    f.write_all(key.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| io("write key file", e))
}

/// A short public fingerprint of a key, stored with each sealed value.
pub fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    hex::encode(&digest[..4])
}

/// The current sealing key plus older ones still accepted for opening during rotation.
#[derive(Clone)]
pub struct SealingKeys {
    current: (String, XChaCha20Poly1305),
    previous: Vec<(String, XChaCha20Poly1305)>,
}

impl SealingKeys {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            current: (key_id(key), cipher(key)),
            previous: Vec::new(),
        }
    }

    /// Also accept values sealed under `old` when opening.
    pub fn with_previous(mut self, old: &[u8; 32]) -> Self {
        self.previous.push((key_id(old), cipher(old)));
        self
    }

    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    /// Seals `plaintext`, bound to `context` (e.g. `account:42:password`).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce = XNonce::generate();
        let ct = self
            .current
            .1
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&ct);
        format!(
            "{SEALED_PREFIX}{}:{}",
            self.current.0,
            BASE64_STANDARD.encode(blob)
        )
    }

    /// Opens a value made by [`seal`](Self::seal) with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::NotSealed)?;
        let (id, body) = rest.split_once(':').ok_or(SecretError::NotSealed)?;
        let cipher = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|(kid, _)| kid == id)
            .map(|(_, c)| c)
            .ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let blob = BASE64_STANDARD
            .decode(body)
            .map_err(|_| SecretError::NotSealed)?;
        if blob.len() < NONCE_LEN {
            return Err(SecretError::NotSealed);
        }
        let nonce = XNonce::try_from(&blob[..NONCE_LEN]).map_err(|_| SecretError::NotSealed)?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &blob[NONCE_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Tampered)
    }

    /// True when `sealed` is under an older key and should be re-sealed.
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(id, _)| id != self.current.0)
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key).expect("a 32-byte key is always the right length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn seal_then_open_round_trips_and_binds_context() {
        let keys = SealingKeys::new(&key(1));
        let sealed = keys.seal(b"hunter2", "account:1:password");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", keys.current_id())));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            keys.open(&sealed, "account:1:password").unwrap().as_slice(),
            b"hunter2"
        );
        assert!(matches!(
            keys.open(&sealed, "account:2:password"),
            Err(SecretError::Tampered)
        ));
    }

    #[test]
    fn a_rotated_keyring_still_opens_old_values() {
        let old = SealingKeys::new(&key(1));
        let sealed = old.seal(b"pw", "ctx");
        let new = SealingKeys::new(&key(2));
        assert!(matches!(
            new.open(&sealed, "ctx"),
            Err(SecretError::UnknownKey(_))
        ));
        let rotating = SealingKeys::new(&key(2)).with_previous(&key(1));
        assert!(rotating.needs_reseal(&sealed));
        assert_eq!(rotating.open(&sealed, "ctx").unwrap().as_slice(), b"pw");
    }

    #[test]
    fn the_published_example_key_is_refused_in_a_key_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sealing_key");
        std::fs::write(&file, crate::config::EXAMPLE_SEALING_KEY).unwrap();
        let mut security = SecuritySettings {
            sealing_key_file: file.display().to_string(),
            ..SecuritySettings::default()
        };
        let err = Keys::load(&security, dir.path()).err().expect("refused");
        assert!(err.to_string().contains("example key"), "{err}");
        security.dev_mode = true;
        assert!(Keys::load(&security, dir.path()).is_ok());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(decode_key(&generate_key()).is_ok());
        assert!(decode_key("c2hvcnQ=").is_err());
        assert!(decode_key("not base64!").is_err());
    }
}
