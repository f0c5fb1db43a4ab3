//! TOTP second factor: enrolment (otpauth URI + QR as SVG), checking codes without replay,
//! and one-time recovery codes stored as SHA-256.

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use totp_rs::{Builder, Secret, Totp};

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

/// Stores the confirmed secret (sealed) and returns fresh recovery codes, shown once.
pub async fn enable(
    conn: &mut PgConnection,
    sealing: &SealingKeys,
    user_id: i64,
    secret_b32: &str,
    confirmed_step: u64,
) -> Result<Vec<String>> {
    let sealed = sealing.seal(secret_b32.as_bytes(), &seal_context(user_id));
    sqlx::query!(
        "UPDATE users SET totp_secret = $2, totp_last_step = $3 WHERE id = $1",
        user_id,
        sealed,
        confirmed_step as i64,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; 5];
        getrandom::fill(&mut raw).map_err(|e| Error::context("read the random source", e))?;
        let hex = hex::encode(raw);
        let code = format!("{}-{}", &hex[..5], &hex[5..]);
        sqlx::query!(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
            user_id,
            hash_recovery_code(&code),
        )
        .execute(&mut *conn)
        .await?;
        codes.push(code);
    }
    Ok(codes)
}

/// Removes the user's two-factor secret and recovery codes.
pub async fn disable(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    sqlx::query!(
        "UPDATE users SET totp_secret = NULL, totp_last_step = NULL WHERE id = $1",
        user_id,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn hash_recovery_code(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// Marks an unused recovery code as used; true when it was valid.
pub async fn use_recovery_code(pool: &PgPool, user_id: i64, code: &str) -> Result<bool> {
    if code.trim().len() < 10 {
        return Ok(false);
    }
    let n = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now()
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user_id,
        hash_recovery_code(code),
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
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
}
