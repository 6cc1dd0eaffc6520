//! The tables of `siaga calls` and `siaga agents`: call rows and agent events as aligned
//! text columns for a supervisor's terminal. Times are UTC; the caller's number is shown
//! in full (the supervisor's own tool reading its own records, not a log). Every cell is
//! shown cleaned ([`display::for_table`]): control and bidi-control characters replaced by
//! U+FFFD, values longer than [`TABLE_CELL_MAX`] characters cut with `…`, since the
//! numbers come from the trunk's signalling.

use super::display::{self, TABLE_CELL_MAX};
use super::{AgentEventRow, CallLogRow, CallRow, table_time};

/// The column headings, left to right.
pub const HEADINGS: [&str; 9] = [
    "RECEIVED (UTC)",
    "CALLER",
    "CALLED",
    "FIRST DIALLED",
    "WAIT S",
    "TALK S",
    "OPERATOR",
    "DISPOSITION",
    "ENDED BY",
];

/// Columns aligned right (the numbers).
const RIGHT: [bool; 9] = [false, false, false, false, true, true, false, false, false];

/// Shown for a value that is not set (a call still ringing has no talk time …).
const UNSET: &str = "-";

/// The rows as a table: a heading line, then one line per row in the order given, columns
/// separated by two spaces, no trailing spaces. First dialled is the number dialled before
/// the call was diverted to siaga (History-Info, Diversion). Wait is until the answer, else
/// until the end; talk is from answer to end; both in seconds with one decimal.
pub fn calls_table(rows: &[CallRow]) -> String {
    render(&HEADINGS, &RIGHT, rows.iter().map(cells))
}

/// The call log's headings: [`HEADINGS`], then the incident's category and agencies.
pub const LOG_HEADINGS: [&str; 11] = [
    "RECEIVED (UTC)",
    "CALLER",
    "CALLED",
    "FIRST DIALLED",
    "WAIT S",
    "TALK S",
    "OPERATOR",
    "DISPOSITION",
    "ENDED BY",
    "CATEGORY",
    "AGENCIES",
];

/// The call log (`siaga calls`) as a table: [`calls_table`]'s columns, then the
/// incident's `category/subcategory` and the agencies it was handed to (comma-separated).
pub fn call_log_table(rows: &[CallLogRow]) -> String {
    let mut right = [false; 11];
    right[..9].copy_from_slice(&RIGHT);
    let lines = rows.iter().map(|row| {
        let [a, b, c, d, e, f, g, h, i] = cells(&row.call);
        let category = match (&row.category, &row.subcategory) {
            (Some(category), Some(sub)) => format!("{category}/{sub}"),
            (Some(category), None) => category.clone(),
            (None, _) => UNSET.to_owned(),
        };
        let agencies = if row.agencies.is_empty() {
            UNSET.to_owned()
        } else {
            row.agencies.join(",")
        };
        [a, b, c, d, e, f, g, h, i, category, agencies]
    });
    render(&LOG_HEADINGS, &right, lines)
}

/// `siaga agents`' column headings, left to right.
pub const AGENT_HEADINGS: [&str; 5] = ["TIME (UTC)", "OPERATOR", "STATE", "REASON", "CALL"];

/// Agent events as a table, like [`calls_table`]: one line per transition in the order
/// given, the state as `from → to`, the call as its UUID.
pub fn agents_table(rows: &[AgentEventRow]) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| UNSET.to_owned());
    let cells = rows.iter().map(|row| {
        [
            table_time(row.at),
            row.operator.clone(),
            format!("{} → {}", row.from_state, row.to_state),
            text(&row.reason),
            text(&row.call_id.map(|id| id.to_string())),
        ]
    });
    render(&AGENT_HEADINGS, &[false; 5], cells)
}

/// Headings and cells as aligned columns (`right`: which are aligned right), two spaces
/// apart, without trailing spaces; each cell cleaned for display.
fn render<const N: usize>(
    headings: &[&str; N],
    right: &[bool; N],
    rows: impl Iterator<Item = [String; N]>,
) -> String {
    let cells: Vec<[String; N]> = rows
        .map(|row| row.map(|cell| display::for_table(&cell, TABLE_CELL_MAX).into_owned()))
        .collect();
    let mut widths = headings.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headings = headings.map(str::to_owned);
    for line in std::iter::once(&headings).chain(&cells) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn cells(row: &CallRow) -> [String; 9] {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| UNSET.to_owned());
    let seconds = |ms: Option<i64>| match ms {
        Some(ms) => format!("{:.1}", ms as f64 / 1000.0),
        None => UNSET.to_owned(),
    };
    [
        table_time(row.received_at),
        text(&row.caller),
        row.called.clone(),
        text(&row.original_called),
        seconds(row.wait_ms()),
        seconds(row.talk_ms()),
        text(&row.operator),
        text(&row.disposition),
        text(&row.ended_by),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::UtcTime;
    use uuid::Uuid;

    fn row(received_at: i64) -> CallRow {
        CallRow {
            id: Uuid::from_u128(1),
            node_id: "n".to_owned(),
            trunk_call_id: "t".to_owned(),
            caller: None,
            called: "112".to_owned(),
            original_called: None,
            trunk: "telco".to_owned(),
            received_at: UtcTime(received_at),
            queued_at: None,
            first_offered_at: None,
            answered_at: None,
            ended_at: None,
            operator: None,
            disposition: None,
            ended_by: None,
            caller_to_operator_packets: None,
            operator_to_caller_packets: None,
        }
    }

    #[test]
    fn aligns_columns_and_marks_unset_values() {
        let t = 1_795_953_665_123;
        let answered = CallRow {
            caller: Some("+6281234567890".to_owned()),
            original_called: Some("110".to_owned()),
            answered_at: Some(UtcTime(t + 12_340)),
            ended_at: Some(UtcTime(t + 72_440)),
            operator: Some("op-3".to_owned()),
            disposition: Some("answered".to_owned()),
            ended_by: Some("caller".to_owned()),
            ..row(t)
        };
        let live = row(t + 100_000);
        let table = calls_table(&[live, answered]);
        let expected = "\
RECEIVED (UTC)       CALLER          CALLED  FIRST DIALLED  WAIT S  TALK S  OPERATOR  DISPOSITION  ENDED BY
2026-11-29 12:02:45  -               112     -                   -       -  -         -            -
2026-11-29 12:01:05  +6281234567890  112     110              12.3    60.1  op-3      answered     caller
";
        assert_eq!(table, expected);
    }

    /// A caller number with a right-to-left override, an escape sequence, a line break and
    /// a very long called URI show cleaned, the columns still aligned on one line each.
    #[test]
    fn signalled_text_is_cleaned_for_the_terminal() {
        let hostile = CallRow {
            caller: Some("\u{202E}0987654321826+\u{1b}[2J\nX".to_owned()),
            called: format!("sip:{}@x.test", "1".repeat(60)),
            ..row(1_795_953_665_123)
        };
        let table = calls_table(&[hostile]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(!table.contains(['\u{202E}', '\u{1b}']), "{table}");
        assert!(
            lines[1].contains("\u{FFFD}0987654321826+\u{FFFD}[2J\u{FFFD}X"),
            "{table}"
        );
        let called = lines[1]
            .split("  ")
            .find(|c| c.starts_with("sip:"))
            .expect("called");
        assert_eq!(called.chars().count(), TABLE_CELL_MAX, "{called}");
        assert!(called.ends_with('…'), "{called}");
    }

    #[test]
    fn no_rows_is_just_the_headings() {
        assert_eq!(calls_table(&[]).lines().count(), 1);
        assert_eq!(agents_table(&[]).lines().count(), 1);
    }

    #[test]
    fn agent_events_show_the_transition_and_the_call() {
        let t = 1_795_953_665_123;
        let event = |at, from: &str, to: &str, reason: Option<&str>, call| AgentEventRow {
            id: Uuid::from_u128(at as u128),
            node_id: "n".to_owned(),
            operator: "op-1".to_owned(),
            at: UtcTime(at),
            seq: 1,
            from_state: from.to_owned(),
            to_state: to.to_owned(),
            reason: reason.map(str::to_owned),
            call_id: call,
        };
        let table = agents_table(&[
            event(t, "available", "ringing", None, Some(Uuid::from_u128(7))),
            event(t + 15_000, "ringing", "not_ready", Some("no_answer"), None),
        ]);
        let expected = "\
TIME (UTC)           OPERATOR  STATE                REASON     CALL
2026-11-29 12:01:05  op-1      available → ringing  -          00000000-0000-0000-0000-000000000007
2026-11-29 12:01:20  op-1      ringing → not_ready  no_answer  -
";
        assert_eq!(table, expected);
    }
}
