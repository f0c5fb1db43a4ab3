//! CSV that spreadsheets open safely: the `csv` crate quotes and escapes; [`spreadsheet_safe`]
//! keeps a cell from being run as a formula.

use std::borrow::Cow;

/// `value` with a leading `'` when a spreadsheet would read it as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return).
pub fn spreadsheet_safe(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// A CSV writer into `out` that quotes a cell only when it must (a comma, quote or line break
/// in it) and ends records with CRLF (RFC 4180) when `crlf`, else LF.
pub fn writer<W: std::io::Write>(out: W, crlf: bool) -> csv::Writer<W> {
    let terminator = if crlf {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    };
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(terminator)
        .from_writer(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cells: &[&str]) -> String {
        let mut w = writer(Vec::new(), false);
        w.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()))
            .unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn cells_that_look_like_formulas_are_neutralised_and_quotes_doubled() {
        assert_eq!(line(&["=HYPERLINK(\"x\")"]), "\"'=HYPERLINK(\"\"x\"\")\"\n");
        assert_eq!(line(&["=1+1"]), "'=1+1\n");
        assert_eq!(line(&["+1"]), "'+1\n");
        assert_eq!(line(&["-1"]), "'-1\n");
        assert_eq!(line(&["@SUM"]), "'@SUM\n");
        assert_eq!(line(&["alice", "a,b"]), "alice,\"a,b\"\n");
        assert_eq!(line(&["say \"hi\""]), "\"say \"\"hi\"\"\"\n");
    }
}
