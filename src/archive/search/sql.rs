//! A parsed [`Query`] as SQL conditions on `messages m`, every value a bind parameter.
//!
//! Free words, phrases, prefixes, `subject:`, `body:` and `attachment:` become one `tsquery`
//! (built in Rust by [`tsquery`](super::tsquery) with the tokenizer that built the vectors)
//! matched against the weighted `m.search` vector (GIN-indexed); `subject:`/`body:`/
//! `attachment:` restrict their lexemes to weight A / C / D. Addresses use trigram-indexed
//! `ILIKE`, attachment names an `EXISTS`.

use sqlx::{Postgres, QueryBuilder};
use time::{Date, OffsetDateTime, Time};

use super::query::{Query, Term, TermKind, TextField};
use super::tsquery::{self, Mode, Node, Stemmers};
use super::vector::Weight;

/// Appends ` AND (…)` for every group of `query` to `qb`. An empty query appends nothing.
pub fn push_conditions(qb: &mut QueryBuilder<'_, Postgres>, query: &Query, stemmers: &Stemmers) {
    let (text_groups, other_groups): (Vec<&Vec<Term>>, Vec<&Vec<Term>>) = query
        .groups
        .iter()
        .partition(|g| g.iter().all(|t| is_full_text(&t.kind)));
    if !text_groups.is_empty() {
        qb.push(" AND ");
        push_match(qb, groups_node(&text_groups, stemmers));
    }
    for group in other_groups {
        qb.push(" AND (");
        for (i, term) in group.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            push_term(qb, term, stemmers);
        }
        qb.push(")");
    }
}

/// True when `query` has full-text terms (words, phrases, subject:, body:, attachment:).
pub fn has_full_text(query: &Query) -> bool {
    query.terms().any(|t| is_full_text(&t.kind) && !t.negated)
}

/// The tsquery for the positive full-text part of `query`, for ranking (`ts_rank_cd`); false
/// (and nothing pushed) when there is none.
pub fn push_rank_query(
    qb: &mut QueryBuilder<'_, Postgres>,
    query: &Query,
    stemmers: &Stemmers,
) -> bool {
    let groups: Vec<&Vec<Term>> = query
        .groups
        .iter()
        .filter(|g| g.iter().all(|t| is_full_text(&t.kind) && !t.negated))
        .collect();
    match groups_node(&groups, stemmers) {
        Node::Nothing | Node::Everything => false,
        node => {
            qb.push_bind(node.render()).push("::tsquery");
            true
        }
    }
}

/// The tsquery text of the full-text terms of `query` (other terms are left out); None when
/// they match nothing or everything. What [`push_conditions`] binds, for tests and tools.
pub fn full_text_tsquery(query: &Query, stemmers: &Stemmers) -> Option<String> {
    let groups: Vec<&Vec<Term>> = query
        .groups
        .iter()
        .filter(|g| g.iter().all(|t| is_full_text(&t.kind)))
        .collect();
    match groups_node(&groups, stemmers) {
        Node::Nothing | Node::Everything => None,
        node => Some(node.render()),
    }
}

fn is_full_text(kind: &TermKind) -> bool {
    matches!(
        kind,
        TermKind::Word(_)
            | TermKind::Phrase(_)
            | TermKind::Prefix(_)
            | TermKind::Field(
                TextField::Subject | TextField::Body | TextField::Attachment,
                _
            )
    )
}

/// `(g1a | g1b) & !g2 & …` as one simplified node.
fn groups_node(groups: &[&Vec<Term>], stemmers: &Stemmers) -> Node {
    Node::And(
        groups
            .iter()
            .map(|group| Node::Or(group.iter().map(|t| term_node(t, stemmers)).collect()))
            .collect(),
    )
    .simplify()
}

fn term_node(term: &Term, stemmers: &Stemmers) -> Node {
    let node = match &term.kind {
        TermKind::Word(w) => tsquery::term(w, Mode::Word, None, stemmers),
        TermKind::Phrase(p) => tsquery::term(p, Mode::Phrase, None, stemmers),
        TermKind::Prefix(p) => tsquery::term(p, Mode::Prefix, None, stemmers),
        TermKind::Field(field, value) => {
            let weight = match field {
                TextField::Subject => Weight::A,
                TextField::Body => Weight::C,
                TextField::Attachment => Weight::D,
                _ => unreachable!("only full-text fields reach the tsquery"),
            };
            match value.strip_suffix('*') {
                Some(p) => tsquery::term(p, Mode::Prefix, Some(weight), stemmers),
                None => tsquery::term(value, Mode::Word, Some(weight), stemmers),
            }
        }
        _ => unreachable!("only full-text terms reach the tsquery"),
    };
    if term.negated {
        Node::Not(Box::new(node))
    } else {
        node
    }
}

/// `m.search @@ $n::tsquery`, or a constant when the text holds nothing searchable.
fn push_match(qb: &mut QueryBuilder<'_, Postgres>, node: Node) {
    match node.simplify() {
        Node::Nothing => qb.push("false"),
        Node::Everything => qb.push("true"),
        node => qb
            .push("m.search @@ ")
            .push_bind(node.render())
            .push("::tsquery"),
    };
}

fn push_term(qb: &mut QueryBuilder<'_, Postgres>, term: &Term, stemmers: &Stemmers) {
    if is_full_text(&term.kind) {
        // The node carries the negation.
        qb.push("(");
        push_match(qb, term_node(term, stemmers));
        qb.push(")");
        return;
    }
    if term.negated {
        qb.push("NOT ");
    }
    qb.push("(");
    match &term.kind {
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
        TermKind::Label(name) => push_label(qb, name),
        _ => unreachable!("full text is handled above"),
    }
    qb.push(")");
}

/// A message carries a label its account names `name` (any case), or a system label called
/// that (`sent`, `Promotions`). The first half lets the GIN index on `m.labels` find the
/// candidates (ids named so in any account); the second holds each message to its own
/// account's names.
fn push_label(qb: &mut QueryBuilder<'_, Postgres>, name: &str) {
    let system = crate::archive::labels::system_ids_called(name);
    qb.push("m.labels <> '{}' AND m.labels && ARRAY(SELECT n.label_id FROM account_labels n WHERE lower(n.name) = lower(");
    qb.push_bind(name.to_string());
    qb.push(") UNION SELECT unnest(");
    qb.push_bind(system.clone());
    qb.push(
        "::text[])) AND EXISTS (SELECT 1 FROM unnest(m.labels) AS l(id) \
         LEFT JOIN account_labels n ON n.account_id = m.account_id AND n.label_id = l.id \
         WHERE lower(n.name) = lower(",
    );
    qb.push_bind(name.to_string());
    qb.push(") OR l.id = ANY(");
    qb.push_bind(system);
    qb.push("::text[]))");
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
        let stemmers = Stemmers::new(&[crate::archive::search::Language::English]);
        push_conditions(&mut qb, &parse(q).unwrap(), &stemmers);
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
        let s = sql("alpha -beta \"gamma delta\" subject:report attachment:contract");
        assert_eq!(s.matches("m.search @@").count(), 1, "{s}");
        assert!(s.contains("$1::tsquery"), "{s}");
    }

    #[test]
    fn text_without_searchable_characters_matches_nothing_and_excludes_nothing() {
        assert!(
            sql("!!!").ends_with("WHERE true AND false"),
            "{}",
            sql("!!!")
        );
        assert!(
            !sql("report -!!!").contains("false"),
            "{}",
            sql("report -!!!")
        );
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
    fn a_label_is_matched_by_bound_name_within_its_own_account() {
        let s = sql("label:\"Client A\" -label:sent");
        assert!(!s.contains("Client A") && !s.contains("SENT"), "{s}");
        assert_eq!(s.matches("m.labels &&").count(), 2, "{s}");
        assert!(s.contains("NOT (m.labels <> '{}'"), "{s}");
        assert!(s.contains("n.account_id = m.account_id"), "{s}");
    }

    #[test]
    fn like_wildcards_typed_by_the_user_are_literal() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
