//! Rendering reports: the table ([`table`]; colour on a terminal,
//! honouring `NO_COLOR`: [`colour`]), JSON ([`json`]), and the
//! Nagios/Icinga plugin output ([`nagios`]).

pub(crate) mod colour;
pub(crate) mod json;
pub(crate) mod nagios;
pub(crate) mod table;

pub(crate) use colour::{state_sgr, use_color, ColorChoice};
pub(crate) use json::render_json;

use crate::duration;
use crate::report::Report;
use std::io::{self, Write as _};

/// Column headers of the report table.
pub(crate) const HEADERS: [&str; 5] = ["TARGET", "KIND", "STATE", "LATENCY", "DETAIL"];

/// The latency cell: a short human duration, `-` when there is none.
pub(crate) fn latency_cell(latency: Option<std::time::Duration>) -> String {
    latency.map_or_else(|| "-".to_owned(), duration::format_latency)
}

/// The table TARGET KIND STATE LATENCY DETAIL, header included; with
/// `color`, the STATE cells are coloured.
pub(crate) fn render_table(reports: &[Report], color: bool) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.kind.to_owned(),
                r.state.to_string(),
                latency_cell(r.latency),
                r.detail.clone(),
            ]
        })
        .collect();
    if color {
        table::render_styled(&HEADERS, &rows, &|row, col| {
            (col == 2).then(|| state_sgr(reports[row].state))
        })
    } else {
        table::render(&HEADERS, &rows)
    }
}

/// Writes `text` to stdout. A closed pipe (`hangsafe check | head -1`) is
/// not an error worth reporting; anything else is reported on stderr.
pub(crate) fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("hangsafe: cannot write output: {e}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::State;
    use std::time::Duration;

    pub(crate) fn reports() -> Vec<Report> {
        vec![
            Report {
                target: "/".into(),
                kind: "path",
                state: State::Up,
                latency: Some(Duration::from_micros(300)),
                detail: "directory on ext4, read 21 entries".into(),
            },
            Report {
                target: "/nfs/home".into(),
                kind: "path",
                state: State::Timeout,
                latency: None,
                detail: "no answer within 2s".into(),
            },
            Report {
                target: "tcp://db:5432".into(),
                kind: "tcp",
                state: State::Down,
                latency: Some(Duration::from_micros(20)),
                detail: "connect: refused".into(),
            },
        ]
    }

    #[test]
    fn renders_the_table() {
        assert_eq!(
            render_table(&reports(), false),
            "TARGET         KIND  STATE    LATENCY  DETAIL\n\
             /              path  up       0.3ms    directory on ext4, read 21 entries\n\
             /nfs/home      path  timeout  -        no answer within 2s\n\
             tcp://db:5432  tcp   down     <0.1ms   connect: refused\n"
        );
        assert_eq!(
            render_table(&[], false),
            "TARGET  KIND  STATE  LATENCY  DETAIL\n"
        );
    }

    #[test]
    fn colours_only_the_state_column() {
        let t = render_table(&reports(), true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "TARGET         KIND  STATE    LATENCY  DETAIL");
        assert_eq!(
            lines[2],
            "/nfs/home      path  \x1b[1;33mtimeout\x1b[0m  -        no answer within 2s"
        );
        assert!(
            lines[1].contains("\x1b[32mup\x1b[0m       0.3ms"),
            "{}",
            lines[1]
        );
        assert!(lines[3].contains("\x1b[31mdown\x1b[0m"), "{}", lines[3]);
        assert_eq!(t.matches('\x1b').count(), 6);
    }
}
