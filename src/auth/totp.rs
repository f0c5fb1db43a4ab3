//! TOTP second factor: enrolment (otpauth URI + QR as SVG), checking codes without replay,
//! and one-time recovery codes (100 random bits each, stored as argon2id).

use sqlx::{PgConnection, PgPool};
use totp_rs::{Builder, Secret, Totp};

use super::password;
use super::users::User;
use crate::error::{Error, Result};
use crate::secrets::SealingKeys;

const ISSUER: &str = "Daygle";
const RECOVERY_CODES: usize = 10;

fn seal_context(user_id: i64) -> String {
    format!("user:{user_id}:totp")
}

/// A fresh random secret, base32: what the enrolment form carries until confirmed.
pub fn new_secret() -> String {
    Secret::generate().to_base32()
}

/// The TOTP generator for a base32 secret, labelled with the username.
pub fn build(secret_b32: &str, username: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|_| Error::invalid("secret", "is not a valid TOTP secret"))?;
    // A ':' would make the otpauth label ambiguous, and the crate refuses it.
    let account = username.replace(':', "_");
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| Error::context("build the TOTP generator", e))
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_url(totp: &Totp) -> Result<String> {
    totp.to_url()
        .map_err(|e| Error::context("build the otpauth URI", e))
}

/// The QR code of `text` as a standalone SVG (rendered by the server, no script needed).
pub fn qr_svg(text: &str) -> Result<String> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|_| Error::Internal("otpauth URI too long for a QR code".into()))?;
    let border = 4;
    let size = qr.size() + border * 2;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"240\" height=\"240\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code for your authenticator app\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// The step `code` matches for `secret_b32` right now, if any.
pub fn matching_step(secret_b32: &str, username: &str, code: &str) -> Result<Option<u64>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(build(secret_b32, username)?.check_current(&code))
}

/// True when `code` is a current code of the user's secret whose time step has not been used
/// before; the step is then recorded (atomically, so two requests cannot both use it).
pub async fn accept_code(
    pool: &PgPool,
    sealing: &SealingKeys,
    user: &User,
    code: &str,
) -> Result<bool> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(false);
    };
    let secret = sealing
        .open(sealed, &seal_context(user.id))
        .map_err(|e| Error::context("open the TOTP secret", e))?;
    let secret = String::from_utf8_lossy(&secret).to_string();
    let Some(step) = matching_step(&secret, &user.username, code)? else {
        return Ok(false);
    };
    let accepted = sqlx::query!(
        "UPDATE users SET totp_last_step = $2
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        user.id,
        step as i64,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(accepted == 1)
}

/// Stores the confirmed secret (sealed) and replaces the recovery codes with `codes`.
pub async fn enable(
    conn: &mut PgConnection,
    sealing: &SealingKeys,
    user_id: i64,
    secret_b32: &str,
    confirmed_step: u64,
    codes: &RecoveryCodes,
) -> Result<()> {
    let sealed = sealing.seal(secret_b32.as_bytes(), &seal_context(user_id));
    sqlx::query!(
        "UPDATE users SET totp_secret = $2, totp_last_step = $3 WHERE id = $1",
        user_id,
        sealed,
        confirmed_step as i64,
    )
    .execute(&mut *conn)
    .await?;
    replace_recovery_codes(conn, user_id, codes).await
}

/// Removes the user's two-factor secret and recovery codes.
pub async fn disable(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE users SET totp_secret = NULL, totp_last_step = NULL,
                          recovery_codes_retired = FALSE WHERE id = $1",
        user_id,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Crockford's base32: no I, L, O or U, so codes read aloud or retyped are unambiguous.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a code: 20 × 5 bits = 100 random bits, shown in five groups of four.
const CODE_CHARS: usize = 20;
/// The first group is the code's selector, stored in the clear to find its row, so one
/// sign-in attempt costs one argon2 check; the other 16 characters (80 bits) are the secret.
const SELECTOR_CHARS: usize = 4;

/// Fresh recovery codes: shown once (`plain`), stored as their argon2id hashes.
pub struct RecoveryCodes {
    pub plain: Vec<String>,
    /// (selector, argon2id hash of the whole normalised code), one per code.
    stored: Vec<(String, String)>,
}

impl RecoveryCodes {
    /// Ten new codes with distinct selectors, hashed on the password-hashing threads.
    pub async fn generate() -> Result<Self> {
        let mut normalised: Vec<String> = Vec::with_capacity(RECOVERY_CODES);
        while normalised.len() < RECOVERY_CODES {
            let code = random_code()?;
            if normalised
                .iter()
                .all(|c| c[..SELECTOR_CHARS] != code[..SELECTOR_CHARS])
            {
                normalised.push(code);
            }
        }
        let hashes =
            futures::future::try_join_all(normalised.iter().map(|c| password::hash(c))).await?;
        Ok(Self {
            plain: normalised.iter().map(|c| grouped(c)).collect(),
            stored: normalised
                .iter()
                .zip(hashes)
                .map(|(c, h)| (c[..SELECTOR_CHARS].to_string(), h))
                .collect(),
        })
    }
}

fn random_code() -> Result<String> {
    let mut raw = [0u8; CODE_CHARS];
    getrandom::fill(&mut raw).map_err(|e| Error::context("read the random source", e))?;
    // 256 is a multiple of 32, so the low five bits of a random byte are uniform.
    Ok(raw
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect())
}

/// `ABCD-EFGH-…`: groups of four for reading and typing.
fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code as stored: upper case, separators and spaces dropped, the letters people confuse
/// with digits read as those digits; `None` when it cannot be one of our codes.
fn normalise(code: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_CHARS);
    for c in code.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
        if out.len() > CODE_CHARS {
            return None;
        }
    }
    (out.len() == CODE_CHARS).then_some(out)
}

/// Replaces the user's recovery codes (any older ones, also retired ones, stop working).
async fn replace_recovery_codes(
    conn: &mut PgConnection,
    user_id: i64,
    codes: &RecoveryCodes,
) -> Result<()> {
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    for (selector, hash) in &codes.stored {
        sqlx::query!(
            "INSERT INTO recovery_codes (user_id, selector, code_hash) VALUES ($1, $2, $3)",
            user_id,
            selector,
            hash,
        )
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query!(
        "UPDATE users SET recovery_codes_retired = FALSE WHERE id = $1",
        user_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the recovery codes of a user who has two-factor sign-in on; the caller checked
/// the user's password and writes the audit row.
pub async fn regenerate_recovery_codes(
    conn: &mut PgConnection,
    user_id: i64,
    codes: &RecoveryCodes,
) -> Result<()> {
    let on = sqlx::query_scalar!(
        r#"SELECT totp_secret IS NOT NULL AS "on!" FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if !on {
        return Err(Error::Conflict(
            "Two-factor sign-in is off: there are no recovery codes to replace.".into(),
        ));
    }
    replace_recovery_codes(conn, user_id, codes).await
}

/// Marks an unused recovery code as used; true when it was valid. The argon2id check runs
/// (against a dummy hash when no unused code has that selector) so a wrong selector costs
/// what a wrong secret costs, and the hash comparison is constant-time; the used mark is one
/// conditional update, so two requests cannot both use a code.
pub async fn use_recovery_code(pool: &PgPool, user_id: i64, code: &str) -> Result<bool> {
    let Some(code) = normalise(code) else {
        return Ok(false);
    };
    let selector = &code[..SELECTOR_CHARS];
    let stored = sqlx::query_scalar!(
        "SELECT code_hash FROM recovery_codes
         WHERE user_id = $1 AND selector = $2 AND used_at IS NULL",
        user_id,
        selector,
    )
    .fetch_optional(pool)
    .await?;
    if !password::verify(&code, stored).await? {
        return Ok(false);
    }
    let n = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now()
         WHERE user_id = $1 AND selector = $2 AND used_at IS NULL",
        user_id,
        selector,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// True when the user's recovery codes were of the old weak kind and were retired on upgrade
/// (the profile page asks them to make new ones).
pub async fn recovery_codes_retired(pool: &PgPool, user_id: i64) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        "SELECT recovery_codes_retired FROM users WHERE id = $1",
        user_id
    )
    .fetch_one(pool)
    .await?)
}

/// How many of the user's recovery codes are still unused.
pub async fn unused_recovery_codes(pool: &PgPool, user_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"#,
        user_id,
    )
    .fetch_one(pool)
    .await?)
}

/// Re-seals every two-factor secret still under an older sealing key (key rotation); the
/// caller commits.
pub async fn reseal_all(tx: &mut sqlx::PgConnection, keys: &SealingKeys) -> Result<u64> {
    let rows = sqlx::query!(
        r#"SELECT id, totp_secret AS "totp_secret!" FROM users
           WHERE totp_secret IS NOT NULL ORDER BY id FOR UPDATE"#,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = 0;
    for row in rows {
        let (id, sealed) = (row.id, row.totp_secret);
        if !keys.needs_reseal(&sealed) {
            continue;
        }
        let plain = keys.open(&sealed, &seal_context(id)).map_err(|e| {
            crate::error::Error::context(format!("open the TOTP secret of user {id}"), e)
        })?;
        sqlx::query!(
            "UPDATE users SET totp_secret = $2 WHERE id = $1",
            id,
            keys.seal(&plain, &seal_context(id)),
        )
        .execute(&mut *tx)
        .await?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_of_the_otpauth_uri() {
        let secret = new_secret();
        let totp = build(&secret, "ali:ce").unwrap();
        let url = otpauth_url(&totp).unwrap();
        assert!(url.starts_with("otpauth://totp/Daygle:ali_ce?"));
        let svg = qr_svg(&url).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path d=\"M"));
    }

    #[test]
    fn a_current_code_matches_and_a_wrong_one_does_not() {
        let secret = new_secret();
        let code = build(&secret, "alice")
            .unwrap()
            .generate_current()
            .to_string();
        assert!(matching_step(&secret, "alice", &code).unwrap().is_some());
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matching_step(&secret, "alice", wrong).unwrap().is_none());
    }

    #[test]
    fn recovery_codes_carry_100_bits_and_read_back_however_they_are_typed() {
        let code = random_code().unwrap();
        assert_eq!(code.len(), CODE_CHARS);
        // 20 characters of a 32-letter alphabet: 100 bits, 80 of them behind the hash.
        assert_eq!(ALPHABET.len().ilog2() as usize * CODE_CHARS, 100);
        assert_eq!(
            ALPHABET.len().ilog2() as usize * (CODE_CHARS - SELECTOR_CHARS),
            80
        );
        let shown = grouped(&code);
        assert_eq!(shown.len(), 24);
        assert_eq!(normalise(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(
            normalise(&shown.to_lowercase().replace('-', " ")).as_deref(),
            Some(code.as_str())
        );
        assert_eq!(
            normalise("oooo-iiii-llll-0000-1111").as_deref(),
            Some("00001111111100001111")
        );
        assert_eq!(normalise("ABCD-EFGH"), None, "too short");
        assert_eq!(
            normalise("UUUU-AAAA-AAAA-AAAA-AAAA"),
            None,
            "not in the alphabet"
        );
        assert_eq!(normalise(&format!("{shown}-A")), None, "too long");
    }
}
