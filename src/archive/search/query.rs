//! The search language people type into the search box, parsed into a [`Query`].
//!
//! ```text
//! invoice "annual report" -draft from:alice OR from:bob has:attachment after:2024-01-01 larger:1M
//! ```
//!
//! Terms separated by spaces must all match; `OR` between two terms makes either enough (it
//! binds tighter than the implicit AND, as in Gmail); `-` negates a term. Unknown `word:` prefixes
//! are ordinary words (so a pasted `Re: hello` still searches). Parsing never panics and gives a
//! message a person can act on.

use std::fmt;

use time::Date;
use time::macros::format_description;

/// A parsed query: every group must match; within a group any term may.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub groups: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub kind: TermKind,
}

/// Where a text operator looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    From,
    To,
    Cc,
    Subject,
    Body,
    Filename,
    /// Text extracted from attachments (PDF, Office, …).
    Attachment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermKind {
    /// A free word: anywhere in subject, addresses, attachment names or body.
    Word(String),
    /// `"several words"` in this order.
    Phrase(String),
    /// `invoic*`: words that start with the text before the star.
    Prefix(String),
    Field(TextField, String),
    HasAttachment,
    /// Messages dated strictly before this day (`before:`), or on/after it (`after:`).
    Before(Date),
    After(Date),
    Larger(u64),
    Smaller(u64),
    Account(String),
    Folder(String),
    MessageId(String),
    /// A label or category by name (`label:Invoices`, `label:"Projects/Apollo"`, `label:sent`).
    Label(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Character offset in the query where the problem starts.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Longest query accepted; longer input is almost certainly not typed by a person.
pub const MAX_QUERY_CHARS: usize = 1000;
const MAX_TERMS: usize = 50;

pub const OPERATORS: &[&str] = &[
    "from:",
    "to:",
    "cc:",
    "subject:",
    "body:",
    "filename:",
    "attachment:",
    "has:attachment",
    "before:",
    "after:",
    "account:",
    "folder:",
    "larger:",
    "smaller:",
    "msgid:",
    "label:",
];

impl Query {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// All terms, for callers that only need to know what was asked (e.g. highlighting).
    pub fn terms(&self) -> impl Iterator<Item = &Term> {
        self.groups.iter().flatten()
    }
}

/// Parses `input` into a query. An empty or blank input is an empty query (everything).
pub fn parse(input: &str) -> Result<Query, ParseError> {
    if input.chars().count() > MAX_QUERY_CHARS {
        return Err(err(
            MAX_QUERY_CHARS,
            format!("the search is too long; keep it under {MAX_QUERY_CHARS} characters"),
        ));
    }
    let tokens = tokenize(input)?;
    let mut groups: Vec<Vec<Term>> = Vec::new();
    let mut pending_or: Option<usize> = None;
    for token in tokens {
        match token.kind {
            TokenKind::Or => {
                if groups.is_empty() || pending_or.is_some() {
                    return Err(err(token.position, "OR needs a search term before it"));
                }
                pending_or = Some(token.position);
            }
            TokenKind::Term {
                negated,
                raw,
                quoted,
            } => {
                let term = Term {
                    negated,
                    kind: term_kind(&raw, quoted, token.position)?,
                };
                match (pending_or.take(), groups.last_mut()) {
                    (Some(_), Some(group)) => group.push(term),
                    _ => groups.push(vec![term]),
                }
            }
        }
    }
    if let Some(position) = pending_or {
        return Err(err(position, "OR needs a search term after it"));
    }
    if groups.iter().map(Vec::len).sum::<usize>() > MAX_TERMS {
        return Err(err(
            0,
            format!("too many search terms; use at most {MAX_TERMS}"),
        ));
    }
    if groups
        .iter()
        .any(|g| g.len() > 1 && g.iter().all(|t| t.negated))
        || all_negated(&groups)
    {
        return Err(err(
            0,
            "a search needs at least one thing to look for, not only things to leave out (-word)",
        ));
    }
    Ok(Query { groups })
}

fn all_negated(groups: &[Vec<Term>]) -> bool {
    !groups.is_empty() && groups.iter().flatten().all(|t| t.negated)
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

#[derive(Debug)]
struct Token {
    position: usize,
    kind: TokenKind,
}

#[derive(Debug)]
enum TokenKind {
    Or,
    /// `raw` keeps an operator prefix (`from:x`); `quoted` marks a value that was in quotes.
    Term {
        negated: bool,
        raw: String,
        quoted: bool,
    },
}

fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let negated = chars[i] == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace();
        if negated {
            i += 1;
        }
        let mut raw = String::new();
        let mut quoted = false;
        while i < chars.len() && !chars[i].is_whitespace() {
            if chars[i] == '"' {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '"')
                    .ok_or_else(|| err(i, "a quote \" is not closed; add the closing quote"))?;
                raw.extend(&chars[i + 1..i + 1 + close]);
                quoted = true;
                i += close + 2;
            } else {
                raw.push(chars[i]);
                i += 1;
            }
        }
        if raw == "OR" && !negated && !quoted {
            tokens.push(Token {
                position: start,
                kind: TokenKind::Or,
            });
        } else if !raw.trim().is_empty() {
            tokens.push(Token {
                position: start,
                kind: TokenKind::Term {
                    negated,
                    raw,
                    quoted,
                },
            });
        }
    }
    Ok(tokens)
}

fn term_kind(raw: &str, quoted: bool, position: usize) -> Result<TermKind, ParseError> {
    let Some((op, value)) = raw.split_once(':').filter(|(op, _)| is_operator(op)) else {
        return Ok(if quoted {
            TermKind::Phrase(raw.trim().to_string())
        } else if let Some(stem) = raw.strip_suffix('*') {
            TermKind::Prefix(prefix(stem, position)?)
        } else {
            TermKind::Word(raw.to_string())
        });
    };
    let op = op.to_ascii_lowercase();
    let value = value.trim();
    if value.is_empty() {
        return Err(err(
            position,
            format!("{op}: needs a value, e.g. {}", example_for(&op)),
        ));
    }
    let text = |field| Ok(TermKind::Field(field, value.to_string()));
    match op.as_str() {
        "from" => text(TextField::From),
        "to" => text(TextField::To),
        "cc" => text(TextField::Cc),
        "subject" => text(TextField::Subject),
        "body" => text(TextField::Body),
        "filename" => text(TextField::Filename),
        "attachment" => text(TextField::Attachment),
        "has" if value.eq_ignore_ascii_case("attachment") => Ok(TermKind::HasAttachment),
        "has" => Err(err(position, "has: only knows has:attachment")),
        "before" => Ok(TermKind::Before(date(value, position, "before")?)),
        "after" => Ok(TermKind::After(date(value, position, "after")?)),
        "larger" => Ok(TermKind::Larger(size(value, position, "larger")?)),
        "smaller" => Ok(TermKind::Smaller(size(value, position, "smaller")?)),
        "account" => Ok(TermKind::Account(value.to_string())),
        "folder" => Ok(TermKind::Folder(value.to_string())),
        "label" => Ok(TermKind::Label(value.to_string())),
        "msgid" => Ok(TermKind::MessageId(
            value
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        )),
        _ => unreachable!("is_operator admits only the operators above"),
    }
}

fn is_operator(op: &str) -> bool {
    matches!(
        op.to_ascii_lowercase().as_str(),
        "from"
            | "to"
            | "cc"
            | "subject"
            | "body"
            | "filename"
            | "attachment"
            | "has"
            | "before"
            | "after"
            | "larger"
            | "smaller"
            | "account"
            | "folder"
            | "msgid"
            | "label"
    )
}

/// Shortest prefix accepted before a `*`: shorter ones match half the archive.
pub const MIN_PREFIX_CHARS: usize = 3;

fn prefix(stem: &str, position: usize) -> Result<String, ParseError> {
    let stem = stem.trim_end_matches('*');
    if stem.chars().filter(|c| c.is_alphanumeric()).count() < MIN_PREFIX_CHARS {
        return Err(err(
            position,
            format!(
                "a word ending in * needs at least {MIN_PREFIX_CHARS} letters before the star, e.g. invoic*"
            ),
        ));
    }
    Ok(stem.to_string())
}

fn example_for(op: &str) -> &'static str {
    match op {
        "before" | "after" => "after:2024-01-31",
        "larger" | "smaller" => "larger:10M",
        "has" => "has:attachment",
        "msgid" => "msgid:<id@example.org>",
        "account" => "account:sales",
        "folder" => "folder:INBOX",
        "label" => "label:Invoices",
        _ => "from:alice@example.org",
    }
}

fn date(value: &str, position: usize, op: &str) -> Result<Date, ParseError> {
    Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| {
        err(
            position,
            format!(
                "{op}: needs a date written YYYY-MM-DD, e.g. {op}:2024-01-31 (got \"{value}\")"
            ),
        )
    })
}

/// `10M`, `500k`, `2G`, `1024` (bytes); units are powers of 1024.
fn size(value: &str, position: usize, op: &str) -> Result<u64, ParseError> {
    let bad = || {
        err(
            position,
            format!("{op}: needs a size such as 500K, 10M or 1G (got \"{value}\")"),
        )
    };
    let upper = value.to_ascii_uppercase();
    let trimmed = upper.trim_end_matches('B');
    let (digits, factor) = match trimmed.chars().last() {
        Some('K') => (&trimmed[..trimmed.len() - 1], 1024u64),
        Some('M') => (&trimmed[..trimmed.len() - 1], 1024 * 1024),
        Some('G') => (&trimmed[..trimmed.len() - 1], 1024 * 1024 * 1024),
        Some(c) if c.is_ascii_digit() => (trimmed, 1),
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> Term {
        Term {
            negated: false,
            kind: TermKind::Word(w.into()),
        }
    }

    #[test]
    fn free_words_must_all_match() {
        let q = parse("invoice  march").unwrap();
        assert_eq!(q.groups, vec![vec![word("invoice")], vec![word("march")]]);
    }

    #[test]
    fn or_joins_its_neighbours_and_binds_tighter_than_and() {
        let q = parse("report alice OR bob").unwrap();
        assert_eq!(
            q.groups,
            vec![vec![word("report")], vec![word("alice"), word("bob")]]
        );
        let q = parse("a OR b OR c").unwrap();
        assert_eq!(q.groups.len(), 1);
        assert_eq!(q.groups[0].len(), 3);
        // Lower-case "or" is an ordinary word.
        assert_eq!(parse("this or that").unwrap().groups.len(), 3);
    }

    #[test]
    fn phrases_negation_and_operators() {
        let q = parse(r#""annual report" -draft from:"Alice Smith" has:attachment"#).unwrap();
        let kinds: Vec<_> = q.terms().map(|t| (t.negated, t.kind.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (false, TermKind::Phrase("annual report".into())),
                (true, TermKind::Word("draft".into())),
                (
                    false,
                    TermKind::Field(TextField::From, "Alice Smith".into())
                ),
                (false, TermKind::HasAttachment),
            ]
        );
    }

    #[test]
    fn labels_take_quoted_names_with_spaces_and_slashes() {
        let q = parse(r#"label:"Client A/2024 Q1" -label:Spam LABEL:sent"#).unwrap();
        let kinds: Vec<_> = q.terms().map(|t| (t.negated, t.kind.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (false, TermKind::Label("Client A/2024 Q1".into())),
                (true, TermKind::Label("Spam".into())),
                (false, TermKind::Label("sent".into())),
            ]
        );
        assert!(
            parse("label:")
                .unwrap_err()
                .message
                .contains("label:Invoices")
        );
    }

    #[test]
    fn dates_sizes_and_ids() {
        let q = parse("after:2024-01-31 before:2024-03-01 larger:10M smaller:500k msgid:<a@b>")
            .unwrap();
        let kinds: Vec<_> = q.terms().map(|t| t.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                TermKind::After(time::macros::date!(2024 - 01 - 31)),
                TermKind::Before(time::macros::date!(2024 - 03 - 01)),
                TermKind::Larger(10 * 1024 * 1024),
                TermKind::Smaller(500 * 1024),
                TermKind::MessageId("a@b".into()),
            ]
        );
    }

    #[test]
    fn unknown_prefixes_are_plain_words() {
        let q = parse("Re: hello http://example.org").unwrap();
        assert_eq!(q.groups.len(), 3);
        assert_eq!(q.groups[0][0].kind, TermKind::Word("Re:".into()));
    }

    #[test]
    fn mistakes_get_messages_a_person_can_act_on() {
        for (input, expect) in [
            ("before:yesterday", "YYYY-MM-DD"),
            ("after:2024-13-01", "YYYY-MM-DD"),
            ("larger:huge", "10M"),
            ("from:", "needs a value"),
            ("\"unclosed phrase", "not closed"),
            ("OR alice", "before it"),
            ("alice OR", "after it"),
            ("alice OR OR bob", "before it"),
            ("-spam", "not only things to leave out"),
            ("has:pdf", "has:attachment"),
        ] {
            let e = parse(input).unwrap_err();
            assert!(e.message.contains(expect), "{input}: {}", e.message);
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let long = "a ".repeat(600);
        for input in [
            "",
            "   ",
            "\"",
            "\"\"",
            "-",
            "--",
            "-\"\"",
            ":",
            "from:\"\"",
            "larger:99999999999999999999G",
            "'; DROP TABLE messages; --",
            "ǅ\u{0}\u{202e}",
            "OR",
            "-OR",
            "(a OR b)",
            long.as_str(),
            "larger:18446744073709551615G",
            "before:-0001-01-01",
        ] {
            let _ = parse(input);
        }
        assert!(parse(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(parse(&"w ".repeat(MAX_TERMS + 1)).is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
