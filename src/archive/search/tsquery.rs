//! What a person typed → the text of a PostgreSQL `tsquery`, through the same
//! [`tokenize::chunks`] that builds the search vectors. The text is bound as a parameter and
//! cast (`$1::tsquery`); every lexeme is quoted, so nothing typed is read as tsquery syntax.
//!
//! - a word matches its exact form or its stem in any language the archive uses;
//! - a compound (`wellpartner.com`, `draft-ietf-mboned`) matches the compound kept whole or its
//!   parts side by side;
//! - a quoted phrase matches the exact forms side by side;
//! - `invoic*` matches every lexeme that starts with `invoic`.

use rust_stemmers::Stemmer;

use super::tokenize::{self, Chunk, Language};
use super::vector::{Weight, push_quoted};

/// A tsquery expression. `Nothing` is a term without any searchable character (`"!!"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Lexeme {
        text: String,
        prefix: bool,
        weight: Option<Weight>,
    },
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    /// Each operand directly after the one before (`<->`).
    Phrase(Vec<Node>),
    Nothing,
    Everything,
}

/// How a term's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exact form or stem.
    Word,
    /// Exact forms only, in order.
    Phrase,
    /// The last part is a prefix.
    Prefix,
}

/// Stemmers for the languages of the archives being searched.
pub struct Stemmers(Vec<Stemmer>);

impl Stemmers {
    pub fn new(languages: &[Language]) -> Self {
        let mut seen = Vec::new();
        let mut stemmers = Vec::new();
        for l in languages {
            if !seen.contains(l) {
                seen.push(*l);
                stemmers.extend(l.stemmer());
            }
        }
        Stemmers(stemmers)
    }
}

/// The query node for `text` read in `mode`, restricted to `weight` when given.
pub fn term(text: &str, mode: Mode, weight: Option<Weight>, stemmers: &Stemmers) -> Node {
    let chunks = tokenize::chunks(text);
    let lexeme = |text: &str, prefix: bool| Node::Lexeme {
        text: text.to_string(),
        prefix,
        weight,
    };
    match chunks.as_slice() {
        [] => Node::Nothing,
        [chunk] => chunk_node(chunk, mode, weight, stemmers),
        many => {
            // Several chunks: their parts side by side (compounds kept whole cannot line up
            // with the positions of the parts that follow them).
            let last = many.len() - 1;
            let mut parts = Vec::new();
            for (ci, chunk) in many.iter().enumerate() {
                let lastpart = chunk.parts.len() - 1;
                for (pi, part) in chunk.parts.iter().enumerate() {
                    let prefix = mode == Mode::Prefix && ci == last && pi == lastpart;
                    parts.push(lexeme(&part.text, prefix));
                }
            }
            Node::Phrase(parts)
        }
    }
}

fn chunk_node(chunk: &Chunk, mode: Mode, weight: Option<Weight>, stemmers: &Stemmers) -> Node {
    let lexeme = |text: &str, prefix: bool| Node::Lexeme {
        text: text.to_string(),
        prefix,
        weight,
    };
    let prefix = mode == Mode::Prefix;
    if let [part] = chunk.parts.as_slice() {
        let mut chars = part.text.chars();
        if let (Some(c), None) = (chars.next(), chars.next())
            && tokenize::is_unspaced(c)
        {
            // One character of an unspaced script: the pairs it starts.
            return lexeme(&part.text, true);
        }
        let exact = lexeme(&part.text, prefix);
        if mode != Mode::Word {
            return exact;
        }
        let mut forms = vec![exact];
        for s in &stemmers.0 {
            if let Some(stem) = tokenize::stem(part, s) {
                let node = lexeme(&stem, false);
                if !forms.contains(&node) {
                    forms.push(node);
                }
            }
        }
        return or(forms);
    }
    let last = chunk.parts.len() - 1;
    let parts = Node::Phrase(
        chunk
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| lexeme(&p.text, prefix && i == last))
            .collect(),
    );
    match chunk.whole() {
        Some(whole) => or(vec![lexeme(whole, prefix), parts]),
        None => parts,
    }
}

fn or(mut nodes: Vec<Node>) -> Node {
    if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::Or(nodes)
    }
}

impl Node {
    /// Folds `Nothing`/`Everything` away: `a | Nothing` = `a`, `!Nothing` = `Everything`, …
    pub fn simplify(self) -> Node {
        match self {
            Node::Or(nodes) => {
                let nodes: Vec<Node> = nodes.into_iter().map(Node::simplify).collect();
                if nodes.contains(&Node::Everything) {
                    return Node::Everything;
                }
                let kept: Vec<Node> = nodes.into_iter().filter(|n| *n != Node::Nothing).collect();
                match kept.len() {
                    0 => Node::Nothing,
                    _ => or(kept),
                }
            }
            Node::And(nodes) => {
                let nodes: Vec<Node> = nodes.into_iter().map(Node::simplify).collect();
                if nodes.contains(&Node::Nothing) {
                    return Node::Nothing;
                }
                let mut kept: Vec<Node> = nodes
                    .into_iter()
                    .filter(|n| *n != Node::Everything)
                    .collect();
                match kept.len() {
                    0 => Node::Everything,
                    1 => kept.remove(0),
                    _ => Node::And(kept),
                }
            }
            Node::Not(inner) => match inner.simplify() {
                Node::Nothing => Node::Everything,
                Node::Everything => Node::Nothing,
                other => Node::Not(Box::new(other)),
            },
            other => other,
        }
    }

    /// The tsquery text. Call on a simplified node; `Nothing`/`Everything` render as an empty
    /// query, which callers must not send.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        let join = |out: &mut String, nodes: &[Node], op: &str| {
            out.push('(');
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                n.render_into(out);
            }
            out.push(')');
        };
        match self {
            Node::Lexeme {
                text,
                prefix,
                weight,
            } => {
                push_quoted(out, text);
                if *prefix || weight.is_some() {
                    out.push(':');
                }
                if *prefix {
                    out.push('*');
                }
                if let Some(w) = weight {
                    out.push(w.letter());
                }
            }
            Node::Or(nodes) => join(out, nodes, " | "),
            Node::And(nodes) => join(out, nodes, " & "),
            Node::Phrase(nodes) => join(out, nodes, " <-> "),
            Node::Not(inner) => {
                out.push('!');
                inner.render_into(out);
            }
            Node::Nothing | Node::Everything => {}
        }
    }
}
