//! CSV export of the call log (`siaga export`, later the API's download): one line per
//! call matching a [`CallFilter`], newest first, with its incident's classification and
//! agencies, written with the `csv` crate (RFC 4180 quoting, `\n` line ends). Times are
//! RFC 3339 UTC with milliseconds; durations are seconds with three decimals; unset values
//! are empty fields. The log is read a page ([`MAX_PAGE`] calls) at a time, so an export
//! of a year holds one page in memory.

use super::{CallFilter, CallLogRow, MAX_PAGE, Store, StoreError, rfc3339_millis};
use std::io::Write;

/// The header line's fields, in column order.
pub const CSV_COLUMNS: [&str; 19] = [
    "call_id",
    "received_at",
    "caller",
    "called",
    "original_called",
    "trunk",
    "node_id",
    "queued_at",
    "answered_at",
    "ended_at",
    "wait_s",
    "talk_s",
    "operator",
    "disposition",
    "ended_by",
    "incident_id",
    "category",
    "subcategory",
    "agencies",
];

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the CSV failed (disk full, closed pipe …).
    #[error("cannot write the CSV: {0}")]
    Write(#[from] csv::Error),
}

/// Writes the calls matching `filter` to `out` as CSV, with a header line
/// ([`CSV_COLUMNS`]); returns how many calls were written. Agencies are joined with `;`.
///
/// Errors: [`ExportError::Store`], [`ExportError::Write`] (what was written so far stays
/// written).
pub async fn export_csv(
    store: &Store,
    filter: &CallFilter,
    out: impl Write,
) -> Result<u64, ExportError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    writer.write_record(CSV_COLUMNS)?;
    let mut written = 0;
    let mut after = None;
    loop {
        let page = store.search_calls(filter, after, MAX_PAGE).await?;
        for row in &page.calls {
            writer.write_record(csv_record(row))?;
            written += 1;
        }
        writer.flush().map_err(csv::Error::from)?;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(written),
        }
    }
}

/// `cell` made safe to open in a spreadsheet (OWASP "CSV injection"): a value that a
/// spreadsheet would read as a formula — one starting with `=`, `@`, a tab or a carriage
/// return, or with `+` or `-` followed by anything but digits — gets a leading `'`, which
/// spreadsheets show as text. Caller numbers such as `+6281234567890` stay as they are.
/// Bidi controls (U+202A–U+202E, U+2066–U+2069, LRM, RLM, ALM), which would show the
/// cell's characters in another order than stored, are replaced by U+FFFD first
/// ([`super::display::without_bidi_controls`]). The caller and the numbers come from the
/// trunk's signalling, so they are outside data.
fn spreadsheet_safe(cell: String) -> String {
    let cell = match super::display::without_bidi_controls(&cell) {
        std::borrow::Cow::Borrowed(_) => cell,
        std::borrow::Cow::Owned(cleaned) => cleaned,
    };
    let mut chars = cell.chars();
    let formula = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.as_str().bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    if formula { format!("'{cell}") } else { cell }
}

/// One call's fields, in [`CSV_COLUMNS`]' order; the fields that come from signalling
/// (caller, called, original called) pass through [`spreadsheet_safe`].
pub fn csv_record(row: &CallLogRow) -> [String; 19] {
    let call = &row.call;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let time = |t: Option<crate::engine::UtcTime>| t.map(rfc3339_millis).unwrap_or_default();
    let seconds = |ms: Option<i64>| {
        ms.map(|ms| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)))
            .unwrap_or_default()
    };
    [
        call.id.to_string(),
        rfc3339_millis(call.received_at),
        spreadsheet_safe(text(&call.caller)),
        spreadsheet_safe(call.called.clone()),
        spreadsheet_safe(text(&call.original_called)),
        call.trunk.clone(),
        call.node_id.clone(),
        time(call.queued_at),
        time(call.answered_at),
        time(call.ended_at),
        seconds(call.wait_ms()),
        seconds(call.talk_ms()),
        text(&call.operator),
        text(&call.disposition),
        text(&call.ended_by),
        row.incident_id.map(|id| id.to_string()).unwrap_or_default(),
        text(&row.category),
        text(&row.subcategory),
        row.agencies.join(";"),
    ]
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_quoted() {
        for (cell, shown) in [
            ("=1+2+cmd", "'=1+2+cmd"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+1+2", "'+1+2"),
            ("-2+3", "'-2+3"),
            ("\tx", "'\tx"),
            ("+6281234567890", "+6281234567890"),
            ("-1", "-1"),
            ("081234567890", "081234567890"),
            ("112", "112"),
            ("", ""),
            ("\u{202E}0987654321826+", "\u{FFFD}0987654321826+"),
            ("+62\u{2066}811\u{2069}", "'+62\u{FFFD}811\u{FFFD}"),
            ("\u{200F}=1+2", "\u{FFFD}=1+2"),
        ] {
            assert_eq!(spreadsheet_safe(cell.to_owned()), shown, "{cell:?}");
        }
    }
}
