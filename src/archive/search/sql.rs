//! A parsed [`Query`] as SQL conditions on `messages m`, every value a bind parameter.
//!
//! Free words, phrases, `subject:` and `body:` become one `tsquery` matched against the weighted
//! `m.search` vector (GIN-indexed). PostgreSQL itself turns each user value into lexemes
//! (`plainto_tsquery` / `phraseto_tsquery`), so nothing the user types is ever parsed as tsquery
//! syntax; `subject:`/`body:` restrict those lexemes to weight A / C by rewriting the normalised
//! query text. Addresses use trigram-indexed `ILIKE`, attachment names an `EXISTS`.

use sqlx::{Postgres, QueryBuilder};
use time::{Date, OffsetDateTime, Time};

use super::query::{Query, Term, TermKind, TextField};

/// Text-search configuration used both when indexing and when querying.
pub const TS_CONFIG: &str = "simple";

/// Appends ` AND (…)` for every group of `query` to `qb`. An empty query appends nothing.
pub fn push_conditions(qb: &mut QueryBuilder<'_, Postgres>, query: &Query) {
    let (text_groups, other_groups): (Vec<&Vec<Term>>, Vec<&Vec<Term>>) = query
        .groups
        .iter()
        .partition(|g| g.iter().all(|t| is_full_text(&t.kind)));
    if !text_groups.is_empty() {
        qb.push(" AND m.search @@ (");
        push_tsquery(qb, &text_groups);
        qb.push(")");
    }
    for group in other_groups {
        qb.push(" AND (");
        for (i, term) in group.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            push_term(qb, term);
        }
        qb.push(")");
    }
}

/// True when `query` has full-text terms (words, phrases, subject:, body:).
pub fn has_full_text(query: &Query) -> bool {
    query.terms().any(|t| is_full_text(&t.kind) && !t.negated)
}

/// The tsquery for the full-text part of `query`, for ranking (`ts_rank_cd`); None when the
/// query has no full-text terms.
pub fn push_rank_query(qb: &mut QueryBuilder<'_, Postgres>, query: &Query) -> bool {
    let groups: Vec<&Vec<Term>> = query
        .groups
        .iter()
        .filter(|g| g.iter().all(|t| is_full_text(&t.kind) && !t.negated))
        .collect();
    if groups.is_empty() {
        return false;
    }
    push_tsquery(qb, &groups);
    true
}

fn is_full_text(kind: &TermKind) -> bool {
    matches!(
        kind,
        TermKind::Word(_)
            | TermKind::Phrase(_)
            | TermKind::Field(TextField::Subject, _)
            | TermKind::Field(TextField::Body, _)
    )
}

/// `(g1a || g1b) && !!g2 && …` as a single tsquery expression.
fn push_tsquery(qb: &mut QueryBuilder<'_, Postgres>, groups: &[&Vec<Term>]) {
    for (gi, group) in groups.iter().enumerate() {
        if gi > 0 {
            qb.push(" && ");
        }
        qb.push("(");
        for (ti, term) in group.iter().enumerate() {
            if ti > 0 {
                qb.push(" || ");
            }
            if term.negated {
                qb.push("!!");
            }
            push_term_tsquery(qb, &term.kind);
        }
        qb.push(")");
    }
}

fn push_term_tsquery(qb: &mut QueryBuilder<'_, Postgres>, kind: &TermKind) {
    let (function, value, weight) = match kind {
        TermKind::Word(w) => ("plainto_tsquery", w, None),
        TermKind::Phrase(p) => ("phraseto_tsquery", p, None),
        TermKind::Field(TextField::Subject, v) => ("phraseto_tsquery", v, Some('A')),
        TermKind::Field(TextField::Body, v) => ("phraseto_tsquery", v, Some('C')),
        _ => unreachable!("only full-text terms reach the tsquery"),
    };
    match weight {
        None => {
            qb.push(format!("{function}('{TS_CONFIG}', "));
            qb.push_bind(value.clone());
            qb.push(")");
        }
        Some(w) => {
            // Every quoted lexeme in the normalised query text gets the weight label, e.g.
            // 'annual' <-> 'report'  →  'annual':A <-> 'report':A.
            qb.push(format!("regexp_replace({function}('{TS_CONFIG}', "));
            qb.push_bind(value.clone());
            qb.push(format!(
                ")::text, '(''(?:[^'']|'''')*'')', '\\1:{w}', 'g')::tsquery"
            ));
        }
    }
}

fn push_term(qb: &mut QueryBuilder<'_, Postgres>, term: &Term) {
    if term.negated {
        qb.push("NOT ");
    }
    qb.push("(");
    match &term.kind {
        kind if is_full_text(kind) => {
            qb.push("m.search @@ ");
            push_term_tsquery(qb, kind);
        }
        TermKind::Field(field, value) => {
            let column = match field {
                TextField::From => Some("m.from_addr"),
                TextField::To => Some("m.to_addrs"),
                TextField::Cc => Some("m.cc_addrs"),
                _ => None,
            };
            match column {
                // The bare column lets the trigram index serve the match; only a negated term
                // needs coalesce, so that mail without the header is not dropped by NULL.
                Some(column) if term.negated => {
                    qb.push(format!("coalesce({column}, '') ILIKE "));
                    qb.push_bind(like_pattern(value));
                }
                Some(column) => {
                    qb.push(format!("{column} ILIKE "));
                    qb.push_bind(like_pattern(value));
                }
                None => {
                    qb.push(
                        "EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = m.id AND a.filename ILIKE ",
                    );
                    qb.push_bind(like_pattern(value));
                    qb.push(")");
                }
            }
        }
        TermKind::HasAttachment => {
            qb.push("m.has_attachments");
        }
        TermKind::Before(day) => {
            qb.push("m.date < ");
            qb.push_bind(start_of(*day));
        }
        TermKind::After(day) => {
            qb.push("m.date >= ");
            qb.push_bind(start_of(*day));
        }
        TermKind::Larger(bytes) => {
            qb.push("m.size > ");
            qb.push_bind(clamp_i64(*bytes));
        }
        TermKind::Smaller(bytes) => {
            qb.push("m.size < ");
            qb.push_bind(clamp_i64(*bytes));
        }
        TermKind::Account(name) => {
            qb.push("m.account_id IN (SELECT id FROM accounts WHERE name = ");
            qb.push_bind(name.clone());
            qb.push(")");
        }
        TermKind::Folder(name) => {
            qb.push("m.folder = ");
            qb.push_bind(name.clone());
        }
        TermKind::MessageId(id) => {
            qb.push("m.message_id = ");
            qb.push_bind(id.clone());
        }
        TermKind::Word(_) | TermKind::Phrase(_) => unreachable!("handled as full text"),
    }
    qb.push(")");
}

/// `%value%` with the LIKE wildcards in the user's text escaped.
pub fn like_pattern(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Days are taken in UTC: `after:2024-01-31` includes mail dated from 2024-01-31T00:00Z.
fn start_of(day: Date) -> OffsetDateTime {
    day.with_time(Time::MIDNIGHT).assume_utc()
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::search::parse;

    fn sql(q: &str) -> String {
        let mut qb = QueryBuilder::new("SELECT m.id FROM messages m WHERE true");
        push_conditions(&mut qb, &parse(q).unwrap());
        qb.sql().to_string()
    }

    #[test]
    fn user_text_only_ever_reaches_sql_as_bind_parameters() {
        let s = sql(r#"'; DROP TABLE x; -- from:"o'brien" subject:"it's" folder:a'b"#);
        assert!(!s.contains("DROP"), "{s}");
        assert!(
            !s.contains("o'brien") && !s.contains("it's") && !s.contains("a'b"),
            "{s}"
        );
    }

    #[test]
    fn all_full_text_terms_share_one_index_condition() {
        let s = sql("alpha -beta \"gamma delta\" subject:report");
        assert_eq!(s.matches("m.search @@").count(), 1, "{s}");
        assert!(s.contains("!!plainto_tsquery"), "{s}");
        assert!(s.contains("phraseto_tsquery"), "{s}");
        assert!(s.contains(":A"), "{s}");
    }

    #[test]
    fn operators_become_their_own_conditions() {
        let s = sql("from:alice OR to:bob has:attachment larger:1M -folder:Spam");
        assert!(
            s.contains("(m.from_addr ILIKE $1) OR (m.to_addrs ILIKE $2)"),
            "{s}"
        );
        assert!(s.contains("m.has_attachments"), "{s}");
        assert!(s.contains("m.size > $3"), "{s}");
        assert!(s.contains("NOT (m.folder = $4)"), "{s}");
        // Negated, a missing header must not hide the message.
        let s = sql("report -from:alice");
        assert!(
            s.contains("NOT (coalesce(m.from_addr, '') ILIKE $2)"),
            "{s}"
        );
    }

    #[test]
    fn like_wildcards_typed_by_the_user_are_literal() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
