//! Plain-text tables: left-aligned columns separated by two spaces, no
//! colour, no trailing blanks.

use crate::check::Report;
use crate::duration;
use std::fmt::Write as _;

/// Column headers of the `check` table.
pub const CHECK_HEADERS: [&str; 4] = ["PATH", "STATE", "LATENCY", "DETAIL"];

/// Renders reports as the `check` table (PATH, STATE, LATENCY, DETAIL),
/// header included.
pub fn render_reports(reports: &[Report]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.status.to_string(),
                r.latency
                    .map_or_else(|| "-".to_owned(), duration::format_latency),
                r.detail.clone(),
            ]
        })
        .collect();
    render(&CHECK_HEADERS, &rows)
}

/// Renders a table with a header line and one line per row, each ending
/// in a newline. Cells are padded to the widest cell of their column
/// (counted in characters); trailing empty cells and the padding before
/// them are omitted. Control characters in cells are shown as `\ooo`
/// octal escapes, so that every row stays on one line.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &escaped {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&escaped) {
        let last = row.iter().rposition(|c| !c.is_empty());
        if let Some(last) = last {
            for (i, cell) in row[..=last].iter().enumerate() {
                if i == last {
                    out.push_str(cell);
                } else {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Replaces control characters (newline, tab, escape, ...) by `\ooo` octal
/// escapes of their code (the convention of /proc/self/mountinfo).
fn escape(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_owned();
    }
    let mut out = String::with_capacity(cell.len() + 8);
    for c in cell.chars() {
        if c.is_control() {
            let _ = write!(out, "\\{:03o}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use std::time::Duration;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn aligns_columns_without_trailing_blanks() {
        let table = render(
            &["A", "BB", "C"],
            &[row(&["long cell", "x", ""]), row(&["y", "z", "last"])],
        );
        assert_eq!(
            table,
            "A          BB  C\n\
             long cell  x\n\
             y          z   last\n"
        );
    }

    #[test]
    fn escapes_control_characters() {
        let table = render(&["P"], &[row(&["/mnt/a\nb\tc"])]);
        assert_eq!(table, "P\n/mnt/a\\012b\\011c\n");
        assert_eq!(escape("\u{1b}[31m"), "\\033[31m");
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn renders_the_check_table() {
        let reports = [
            Report {
                target: "/".into(),
                status: Status::Up,
                latency: Some(Duration::from_micros(300)),
                detail: String::new(),
            },
            Report {
                target: "/nfs/home".into(),
                status: Status::Timeout,
                latency: None,
                detail: "no answer within 2s".into(),
            },
            Report {
                target: "/missing".into(),
                status: Status::Down,
                latency: Some(Duration::from_micros(20)),
                detail: "No such file or directory (os error 2)".into(),
            },
        ];
        assert_eq!(
            render_reports(&reports),
            "PATH       STATE    LATENCY  DETAIL\n\
             /          up       0.3ms\n\
             /nfs/home  timeout  -        no answer within 2s\n\
             /missing   down     <0.1ms   No such file or directory (os error 2)\n"
        );
    }

    #[test]
    fn an_empty_table_is_just_the_header() {
        assert_eq!(render_reports(&[]), "PATH  STATE  LATENCY  DETAIL\n");
    }
}
