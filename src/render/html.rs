//! E-mail HTML made safe to display: an allow-list sanitiser (ammonia) that removes script,
//! event handlers, forms, frames and dangerous URLs, keeps harmless inline styles, serves
//! `cid:` images from the archive and blocks remote images until the reader asks for them.
//!
//! The result is still shown only inside a sandboxed iframe under a CSP that forbids script —
//! sanitising and sandboxing each catch what the other might miss.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ammonia::{Builder, UrlRelative};

/// Shown in place of a remote image until the reader chooses to load remote content.
pub const BLOCKED_IMAGE: &str = "/static/img/remote-image-blocked.svg";

/// CSS properties that change how text looks but cannot load anything or escape the frame.
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "letter-spacing",
    "text-align",
    "text-decoration",
    "text-transform",
    "text-indent",
    "vertical-align",
    "white-space",
    "word-break",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "width",
    "height",
    "max-width",
    "min-width",
    "display",
    "list-style-type",
];

#[derive(Debug, Clone, Copy)]
pub struct HtmlOptions {
    /// The archived message, so `cid:` references resolve to its own parts only.
    pub message_id: i64,
    pub load_remote_images: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeHtml {
    pub html: String,
    /// Remote images replaced by the placeholder (offer "load remote images" when > 0).
    pub remote_images_blocked: usize,
    /// `cid:` images beyond [`MAX_INLINE_IMAGES`], left without a source.
    pub inline_images_dropped: usize,
}

/// Most `cid:` images one body links to; each is a request to the archive, so a message with
/// thousands of them cannot turn one page view into thousands of requests.
pub const MAX_INLINE_IMAGES: usize = 200;

pub fn sanitize_email_html(html: &str, options: HtmlOptions) -> SafeHtml {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = blocked.clone();
    let inline = Arc::new(AtomicUsize::new(0));
    let inline_counter = inline.clone();
    let HtmlOptions {
        message_id,
        load_remote_images,
    } = options;
    let cid_prefix = format!("/messages/{message_id}/cid/");
    let allowed_prefix = cid_prefix.clone();
    let mut builder = Builder::default();
    builder
        .url_schemes(HashSet::from(["http", "https", "mailto", "cid"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .add_generic_attributes(["style"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .strip_comments(true)
        // The only relative URLs that survive are the ones this filter writes itself.
        .url_relative(UrlRelative::Custom(Box::new(OwnUrlsOnly {
            cid_prefix: allowed_prefix,
        })))
        .attribute_filter(move |element, attribute, value| {
            if attribute == "style" {
                return Some(Cow::Owned(safe_declarations(value)));
            }
            let lower = value.trim().to_ascii_lowercase();
            if element != "img" || attribute != "src" {
                // Links and citations may lead only to other sites or to a mail program:
                // never to a path on this server (`/messages/…`), never to `cid:`.
                if matches!(attribute, "href" | "cite" | "longdesc" | "src" | "action") {
                    let external = ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|scheme| lower.starts_with(scheme));
                    return external.then_some(Cow::Borrowed(value));
                }
                return Some(Cow::Borrowed(value));
            }
            if let Some(cid) = value.trim().get(4..).filter(|_| lower.starts_with("cid:")) {
                if inline_counter.fetch_add(1, Ordering::Relaxed) >= MAX_INLINE_IMAGES {
                    return None;
                }
                Some(Cow::Owned(format!("{cid_prefix}{}", percent_encode(cid))))
            } else if lower.starts_with("data:image/") && !lower.starts_with("data:image/svg") {
                Some(Cow::Borrowed(value))
            } else if lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("//")
            {
                if load_remote_images && !lower.starts_with("//") {
                    Some(Cow::Borrowed(value))
                } else {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Some(Cow::Borrowed(BLOCKED_IMAGE))
                }
            } else {
                None
            }
        });
    let html = builder.clean(html).to_string();
    SafeHtml {
        html,
        remote_images_blocked: blocked.load(Ordering::Relaxed),
        inline_images_dropped: inline
            .load(Ordering::Relaxed)
            .saturating_sub(MAX_INLINE_IMAGES),
    }
}

/// Drops declarations that could load or run anything even in an allowed property: `url(`,
/// IE's `expression(`, and CSS escapes that could spell either.
fn safe_declarations(style: &str) -> String {
    style
        .split(';')
        .filter(|decl| {
            let lower = decl.to_ascii_lowercase();
            !["url(", "expression", "\\", "javascript:", "@import"]
                .iter()
                .any(|bad| lower.contains(bad))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Keeps only the relative URLs this module writes: the placeholder and this message's parts.
struct OwnUrlsOnly {
    cid_prefix: String,
}

impl<'a> ammonia::UrlRelativeEvaluate<'a> for OwnUrlsOnly {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        // A part reference is exactly the prefix and one percent-encoded segment, never a
        // path that climbs out of it (`..`, `/`, a query).
        let own_part = url.strip_prefix(&self.cid_prefix).is_some_and(|cid| {
            !cid.is_empty()
                && cid != "."
                && cid != ".."
                && cid.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
                })
        });
        (url == BLOCKED_IMAGE || own_part).then_some(Cow::Borrowed(url))
    }
}

/// Percent-encodes everything but unreserved URL characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> SafeHtml {
        sanitize_email_html(
            html,
            HtmlOptions {
                message_id: 7,
                load_remote_images: false,
            },
        )
    }

    #[test]
    fn links_lead_only_to_other_sites_or_mail_never_to_paths_here() {
        let out = clean(
            r#"<a href="/messages/7/cid/../../messages/export?format=mbox">a</a>
               <a href="/messages/export">b</a><a href="../users">c</a><a href="cid:x">d</a>
               <a href="//evil.example/x">e</a><blockquote cite="/audit">q</blockquote>
               <img src="/messages/7/cid/../../users"><img src="cid:..">
               <a href="https://example.org/ok">ok</a><a href="mailto:bob@example.org">m</a>"#,
        )
        .html;
        for bad in [
            "/messages/export",
            "../",
            "/users",
            "cid:x",
            "evil.example",
            "/audit",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        assert!(out.contains("https://example.org/ok") && out.contains("mailto:bob@example.org"));
        assert!(!out.contains("/messages/7/cid/..\""), "{out}");
    }

    #[test]
    fn inline_images_are_capped() {
        let html: String = (0..MAX_INLINE_IMAGES + 50)
            .map(|i| format!("<img src=\"cid:img{i}@x\">"))
            .collect();
        let out = clean(&html);
        assert_eq!(
            out.html.matches("/messages/7/cid/").count(),
            MAX_INLINE_IMAGES
        );
        assert_eq!(out.inline_images_dropped, 50);
    }

    #[test]
    fn script_handlers_and_javascript_urls_are_removed() {
        let out = clean(
            r#"<p onclick="alert(1)">hi</p><script>alert(2)</script><a href="javascript:alert(3)">x</a>
               <img src=x onerror="alert(4)"><svg><script>alert(5)</script></svg>
               <math><mi xlink:href="javascript:alert(6)">m</mi></math>"#,
        )
        .html;
        for bad in [
            "onclick",
            "<script",
            "javascript:",
            "onerror",
            "<svg",
            "alert(",
        ] {
            assert!(!out.contains(bad), "{bad} survived in {out}");
        }
        assert!(out.contains("<p>hi</p>"));
    }

    #[test]
    fn forms_frames_meta_and_base_are_removed() {
        let out = clean(
            r#"<form action="https://evil"><input name=p></form><iframe src="https://evil"></iframe>
               <meta http-equiv="refresh" content="0;url=https://evil"><base href="https://evil/">
               <object data="x"></object><embed src="x"><link rel=stylesheet href="https://evil/x.css">"#,
        )
        .html;
        for bad in [
            "<form", "<input", "<iframe", "<meta", "<base", "<object", "<embed", "<link", "evil",
        ] {
            assert!(!out.contains(bad), "{bad} survived in {out}");
        }
    }

    #[test]
    fn remote_images_are_blocked_until_asked_for() {
        let html =
            r#"<img src="https://tracker.example/pixel.gif"><img src="//cdn.example/x.png">"#;
        let blocked = clean(html);
        assert_eq!(blocked.remote_images_blocked, 2);
        assert!(!blocked.html.contains("tracker.example"));
        assert!(blocked.html.contains(BLOCKED_IMAGE));
        let allowed = sanitize_email_html(
            html,
            HtmlOptions {
                message_id: 7,
                load_remote_images: true,
            },
        );
        assert!(allowed.html.contains("https://tracker.example/pixel.gif"));
        assert!(
            !allowed.html.contains("cdn.example"),
            "scheme-relative URLs stay blocked"
        );
    }

    #[test]
    fn cid_images_point_at_this_message_only() {
        let out = clean(r#"<img src="cid:logo@example.org"><img src="/messages/8/raw">"#).html;
        assert!(
            out.contains(r#"src="/messages/7/cid/logo%40example.org""#),
            "{out}"
        );
        assert!(!out.contains("/messages/8"), "{out}");
    }

    #[test]
    fn harmless_styles_stay_and_dangerous_css_goes() {
        let out = clean(
            r#"<p style="color: red; background-image: url(https://evil/x); position: fixed; behavior: url(x.htc); width: expression(alert(1))">t</p><style>body{background:url(https://evil)}</style>"#,
        )
        .html;
        assert!(
            out.contains("color: red") || out.contains("color:red"),
            "{out}"
        );
        for bad in ["url(", "position", "behavior", "<style", "expression"] {
            assert!(!out.contains(bad), "{bad} survived in {out}");
        }
    }

    #[test]
    fn links_open_outside_without_referrer() {
        let out = clean(r#"<a href="https://example.org/x">x</a>"#).html;
        assert!(
            out.contains(r#"rel="noopener noreferrer nofollow""#),
            "{out}"
        );
        assert!(out.contains(r#"target="_blank""#), "{out}");
    }
}
