//! Subject access and erasure: everything from, to, cc or bcc one person's address(es) in the
//! archive accounts the operator may read — exported, then (unless held) erased as one
//! audited request whose record lists the ids and SHA-256 sums that went.

use sqlx::{PgPool, QueryBuilder};

use super::requests::{self, Executed, Kind, NewRequest};
use crate::archive::export::{self, Exported, Format, HeldMail};
use crate::audit::Actor;
use crate::auth::Grants;
use crate::error::{Error, Result};

/// Checks and normalises addresses (trimmed, lower-case).
pub fn parse_addresses(input: &[String]) -> Result<Vec<String>> {
    let out: Vec<String> = input
        .iter()
        .flat_map(|a| a.split([',', ' ', '\n']))
        .map(|a| a.trim().trim_matches(['<', '>']).to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    if out.is_empty() {
        return Err(Error::invalid("address", "give at least one address"));
    }
    for a in &out {
        let valid = a.len() <= 320
            && a.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
        if !valid {
            return Err(Error::invalid(
                "address",
                format!("{a} is not an e-mail address"),
            ));
        }
    }
    Ok(out)
}

/// Every message (that `grants` allows) with one of `addresses` in From, To, Cc or Bcc, as a
/// whole address — `al@example.com` does not match `val@example.com`.
pub async fn find(pool: &PgPool, grants: &Grants, addresses: &[String]) -> Result<Vec<i64>> {
    let mut qb = QueryBuilder::new("SELECT m.id FROM messages m WHERE ");
    grants.push_filter(&mut qb, "m.account_id");
    qb.push(" AND (FALSE");
    for a in addresses {
        let like = crate::archive::search::sql::like_pattern(a);
        qb.push(" OR ((m.from_addr ILIKE ")
            .push_bind(like.clone())
            .push(" OR m.to_addrs ILIKE ")
            .push_bind(like.clone())
            .push(" OR m.cc_addrs ILIKE ")
            .push_bind(like.clone())
            .push(" OR m.bcc_addrs ILIKE ")
            .push_bind(like)
            .push(") AND concat_ws(' ', m.from_addr, m.to_addrs, m.cc_addrs, m.bcc_addrs) ~* ")
            .push_bind(whole_address_regex(a))
            .push(")");
    }
    qb.push(") ORDER BY m.id");
    Ok(qb.build_query_scalar().fetch_all(pool).await?)
}

/// A PostgreSQL regular expression matching `address` with no address character either side.
fn whole_address_regex(address: &str) -> String {
    let mut escaped = String::new();
    for c in address.chars() {
        if !c.is_alphanumeric() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("(^|[^[:alnum:]._%+-]){escaped}($|[^[:alnum:]._%+-])")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub request_id: i64,
    pub found: i64,
    pub exported: Option<Exported>,
    pub executed: Executed,
}

/// Finds, optionally exports to `export_to` (zip with manifest; nothing is erased if the
/// export fails), and erases. Held messages are exported but stay.
pub async fn erase<W>(
    pool: &PgPool,
    actor: &Actor,
    grants: &Grants,
    addresses: &[String],
    reason: &str,
    export_to: Option<W>,
) -> Result<Erased>
where
    W: std::io::Write + Send + 'static,
{
    if reason.trim().is_empty() {
        return Err(Error::invalid("reason", "is required"));
    }
    let ids = find(pool, grants, addresses).await?;
    if ids.is_empty() {
        return Err(Error::invalid(
            "address",
            "no archived mail has these addresses",
        ));
    }
    let exported = match export_to {
        Some(out) => {
            Some(
                // Infected or unscanned mail is withheld, and listed as such in the manifest.
                export::export(
                    pool,
                    grants,
                    HeldMail::Withhold,
                    ids.clone(),
                    Format::Zip,
                    // The erasure's own audit row follows; the manifest names the request.
                    export::ExportInfo::new(
                        &actor.username,
                        &format!("erasure request: {}", addresses.join(" ")),
                        "zip",
                        None,
                    ),
                    out,
                    |_| {},
                )
                .await?,
            )
        }
        None => None,
    };
    let requested = requests::request(
        pool,
        actor,
        grants,
        &NewRequest {
            kind: Kind::Erasure,
            ids: &ids,
            reason,
            query: None,
            addresses,
        },
        false,
    )
    .await?;
    let executed = match requested.outcome {
        requests::Outcome::Done(e) => e,
        requests::Outcome::Pending => Executed::default(),
    };
    Ok(Erased {
        request_id: requested.id,
        found: requested.messages,
        exported,
        executed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_split_trimmed_and_checked() {
        let got = parse_addresses(&["<Al@Example.com>, bo@x.org".into()]).unwrap();
        assert_eq!(got, vec!["al@example.com", "bo@x.org"]);
        assert!(parse_addresses(&["nobody".into()]).is_err());
        assert!(parse_addresses(&[" ".into()]).is_err());
    }

    #[test]
    fn the_regex_escapes_everything_but_letters_and_digits() {
        assert_eq!(
            whole_address_regex("a.b+c@x.org"),
            "(^|[^[:alnum:]._%+-])a\\.b\\+c\\@x\\.org($|[^[:alnum:]._%+-])"
        );
    }
}
