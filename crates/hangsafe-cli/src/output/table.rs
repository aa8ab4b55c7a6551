//! Plain-text tables: left-aligned columns separated by two spaces, no
//! trailing blanks, and optional ANSI styling of single cells (applied
//! after alignment, so colour never disturbs the columns).

use std::fmt::Write as _;

/// Renders a table with a header line and one line per row, each ending
/// in a newline. Cells are padded to the widest cell of their column
/// (counted in characters); trailing empty cells and the padding before
/// them are omitted. Control characters in cells are shown as `\ooo`
/// octal escapes, so that every row stays on one line.
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    render_styled(headers, rows, &|_, _| None)
}

/// Like [`render`], and the data cell at (row, column) is wrapped in the
/// SGR sequence `style(row, column)` returns (e.g. `"31"` for red) and a
/// reset. Padding stays outside the sequence.
pub(crate) fn render_styled(
    headers: &[&str],
    rows: &[Vec<String>],
    style: &dyn Fn(usize, usize) -> Option<&'static str>,
) -> String {
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
    for (r, row) in std::iter::once(&header).chain(&escaped).enumerate() {
        let last = row.iter().rposition(|c| !c.is_empty());
        if let Some(last) = last {
            for (i, cell) in row[..=last].iter().enumerate() {
                let sgr = if r == 0 { None } else { style(r - 1, i) };
                match sgr {
                    // Writing to a String cannot fail.
                    Some(code) => {
                        let _ = write!(out, "\x1b[{code}m{cell}\x1b[0m");
                    }
                    None => out.push_str(cell),
                }
                if i != last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
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
    fn styles_cells_without_breaking_alignment() {
        let table = render_styled(
            &["A", "B", "C"],
            &[row(&["x", "up", "1"]), row(&["yy", "timeout", "2"])],
            &|r, c| (c == 1 && r == 1).then_some("33"),
        );
        assert_eq!(
            table,
            "A   B        C\n\
             x   up       1\n\
             yy  \x1b[33mtimeout\x1b[0m  2\n"
        );
    }
}
