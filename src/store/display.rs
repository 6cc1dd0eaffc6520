//! Signalled text made safe to show to a person: the caller's number, the number dialled
//! and other values that come from the trunk's SIP signalling are outside data and may
//! hold control characters, Unicode bidi controls (which make a terminal or a spreadsheet
//! show text in another order than it is stored, e.g. a number read backwards) or be very
//! long.
//!
//! The store keeps the values exactly as signalled (they are evidence); only what is
//! *shown* is cleaned: [`for_table`] for the CLI's tables, [`without_bidi_controls`] for
//! the CSV export. The JSON API sends values exactly (JSON escapes control characters; a
//! client renders them as untrusted text).

use std::borrow::Cow;

/// Most characters of a table cell (`siaga calls`, `siaga agents`); a longer value is cut
/// to this width, its last character `…`.
pub const TABLE_CELL_MAX: usize = 40;

/// Shown in place of a control or bidi-control character (U+FFFD REPLACEMENT CHARACTER).
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether `c` has Unicode's `Bidi_Control` property: ALM (U+061C), LRM and RLM
/// (U+200E, U+200F), the embeddings and overrides LRE, RLE, PDF, LRO, RLO
/// (U+202A–U+202E) and the isolates LRI, RLI, FSI, PDI (U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` would move the cursor or change a terminal's state rather than show: a
/// control character (Unicode `Cc`: C0, DEL, C1, so also ESC), or the line and paragraph
/// separators U+2028, U+2029.
fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` for a table cell: every control and bidi-control character replaced by
/// [`REPLACEMENT`], then cut to `max` characters (the last one `…`) when longer. Borrows
/// when nothing changes.
pub fn for_table(text: &str, max: usize) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_control(c) || is_bidi_control(c);
    let long = text.chars().count() > max;
    if !long && !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let keep = if long { max.saturating_sub(1) } else { max };
    let mut shown: String = text
        .chars()
        .take(keep)
        .map(|c| if unsafe_char(c) { REPLACEMENT } else { c })
        .collect();
    if long && max > 0 {
        shown.push('…');
    }
    Cow::Owned(shown)
}

/// `text` with every bidi-control character replaced by [`REPLACEMENT`] (for the CSV
/// export, read by people in spreadsheets; its quoting already keeps line breaks inside
/// a cell). Borrows when there is none.
pub fn without_bidi_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_bidi_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_bidi_control(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["+6281234567890", "urn:service:sos", "Jl. Merdeka № 12", ""] {
            assert!(matches!(for_table(text, TABLE_CELL_MAX), Cow::Borrowed(t) if t == text));
            assert!(matches!(without_bidi_controls(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn controls_and_bidi_controls_are_replaced() {
        // A right-to-left override that would show "+62...0987" reversed, an isolate, an
        // ANSI escape sequence, a NUL, DEL, a C1 control and a line separator.
        assert_eq!(for_table("\u{202E}0987+62", 40), "\u{FFFD}0987+62");
        assert_eq!(for_table("a\u{2067}b\u{2069}c", 40), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(for_table("\u{1b}[31mred", 40), "\u{FFFD}[31mred");
        assert_eq!(
            for_table("a\0b\u{7f}c\u{85}d\u{2028}e", 40),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e"
        );
        assert_eq!(
            for_table("tab\there\nnext", 40),
            "tab\u{FFFD}here\u{FFFD}next"
        );
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202D}', '\u{2066}',
        ] {
            assert!(is_bidi_control(c), "{c:?}");
            assert_eq!(without_bidi_controls(&format!("1{c}2")), "1\u{FFFD}2");
        }
        assert!(!is_bidi_control('\u{2070}') && !is_bidi_control('\u{2029}'));
        // The CSV keeps other controls: its quoting holds them inside the cell.
        assert_eq!(without_bidi_controls("a\nb"), "a\nb");
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        let long = "9".repeat(100);
        let shown = for_table(&long, TABLE_CELL_MAX);
        assert_eq!(shown.chars().count(), TABLE_CELL_MAX);
        assert!(shown.ends_with("9…"), "{shown}");
        assert_eq!(for_table(&"x".repeat(40), 40), "x".repeat(40));
        // Counted in characters, not bytes; cut after replacing.
        assert_eq!(for_table("ééééé", 3), "éé…");
        assert_eq!(for_table("\u{202E}abcdef", 4), "\u{FFFD}ab…");
        assert_eq!(for_table("abc", 0), "");
    }
}
