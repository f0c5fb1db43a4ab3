//! PDF text through pdf-extract (pure Rust, on lopdf), page by page up to the page limit and
//! the deadline.

use super::{Limits, Sink};

pub(super) fn text(bytes: &[u8], limits: &Limits, sink: &mut Sink) -> Result<(), String> {
    if !bytes.starts_with(b"%PDF") && !bytes.windows(4).take(1024).any(|w| w == b"%PDF") {
        return Err("not a PDF file".into());
    }
    let mut doc =
        pdf_extract::Document::load_mem(bytes).map_err(|e| format!("the PDF is malformed: {e}"))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("the PDF is encrypted".into());
    }
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    for page in pages.iter().take(limits.max_pdf_pages) {
        let mut text = String::new();
        {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            // A page that cannot be read is left out; the others still count.
            let _ = pdf_extract::output_doc_page(&doc, &mut output, *page);
        }
        sink.push(&text);
        sink.push("\n");
        if sink.full() {
            break;
        }
        sink.check_time()?;
    }
    Ok(())
}
