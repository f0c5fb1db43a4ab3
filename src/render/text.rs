//! Plain-text bodies as HTML: everything escaped, web links made clickable.

/// Escapes `text` for HTML and turns http(s) URLs into links that open outside the archive.
pub fn text_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        escape_into(&rest[..start], &mut out);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(candidate.len());
        // Trailing punctuation usually ends the sentence, not the URL.
        let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'']);
        if url.len() <= "https://".len() {
            escape_into(&candidate[..end], &mut out);
        } else {
            out.push_str("<a href=\"");
            escape_into(url, &mut out);
            out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
            escape_into(url, &mut out);
            out.push_str("</a>");
            escape_into(&candidate[url.len()..end], &mut out);
        }
        rest = &candidate[end..];
    }
    escape_into(rest, &mut out);
    out
}

fn find_url_start(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("https://"), lower.find("http://")]
        .into_iter()
        .flatten()
        .min()
}

pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_urls_become_links() {
        let html = text_to_html("see <b>https://example.org/a?x=1&y=2</b>. or http://x.io.");
        assert_eq!(
            html,
            "see &lt;b&gt;<a href=\"https://example.org/a?x=1&amp;y=2\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">https://example.org/a?x=1&amp;y=2</a>&lt;/b&gt;. or <a href=\"http://x.io\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">http://x.io</a>."
        );
    }

    #[test]
    fn javascript_and_bare_schemes_are_not_linked() {
        let html = text_to_html("javascript:alert(1) https:// \"><script>");
        assert!(!html.contains("<a"));
        assert!(!html.contains("<script>"));
    }
}
