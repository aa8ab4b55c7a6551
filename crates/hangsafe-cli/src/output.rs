//! Rendering reports: the table (colour on a terminal, honouring
//! `NO_COLOR`), and JSON.

use crate::duration;
use crate::report::{Report, State};
use crate::table;
use std::io::{self, IsTerminal as _, Write as _};

/// Column headers of the report table.
pub const HEADERS: [&str; 5] = ["TARGET", "KIND", "STATE", "LATENCY", "DETAIL"];

/// When to colour the table (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset
    /// or empty.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour: `always`/`never` as told; `auto` only when standard
/// output is a terminal and `NO_COLOR` is unset or empty (no-color.org).
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            !no_color && io::stdout().is_terminal()
        }
    }
}

/// The SGR colour of a state: green up, red down, bold yellow timeout,
/// magenta error, cyan pending.
pub fn state_sgr(state: State) -> &'static str {
    match state {
        State::Up => "32",
        State::Down => "31",
        State::Timeout => "1;33",
        State::Error => "35",
        State::Pending => "36",
    }
}

/// The latency cell: a short human duration, `-` when there is none.
pub fn latency_cell(latency: Option<std::time::Duration>) -> String {
    latency.map_or_else(|| "-".to_owned(), duration::format_latency)
}

/// The table TARGET KIND STATE LATENCY DETAIL, header included; with
/// `color`, the STATE cells are coloured.
pub fn render_table(reports: &[Report], color: bool) -> String {
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

/// The JSON array of `--json`: one object per report with exactly the
/// keys `target`, `kind`, `state`, `latency_ms` and `detail`, in that
/// order, one object per line; newline-terminated.
pub fn render_json(reports: &[Report]) -> String {
    if reports.is_empty() {
        return "[]\n".to_owned();
    }
    let mut out = String::from("[\n");
    for (i, r) in reports.iter().enumerate() {
        let v = r.to_json();
        let field = |k: &str| serde_json::to_string(&v[k]).unwrap_or_else(|_| "null".to_owned());
        out.push_str(&format!(
            "  {{\"target\": {}, \"kind\": {}, \"state\": {}, \"latency_ms\": {}, \"detail\": {}}}{}\n",
            field("target"),
            field("kind"),
            field("state"),
            field("latency_ms"),
            field("detail"),
            if i + 1 < reports.len() { "," } else { "" }
        ));
    }
    out.push_str("]\n");
    out
}

/// Writes `text` to stdout. A closed pipe (`hangsafe check | head -1`) is
/// not an error worth reporting; anything else is reported on stderr.
pub fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("hangsafe: cannot write output: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reports() -> Vec<Report> {
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

    #[test]
    fn json_has_exactly_the_five_keys() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&reports())).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 3);
        for o in a {
            let mut keys: Vec<&str> = o.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["detail", "kind", "latency_ms", "state", "target"]);
        }
        assert_eq!(a[0]["latency_ms"], serde_json::json!(0.3));
        assert!(a[1]["latency_ms"].is_null());
        assert_eq!(a[1]["state"], "timeout");
        assert_eq!(render_json(&[]), "[]\n");
        // Keys in the documented order, one object per line.
        let text = render_json(&reports()[..1]);
        assert_eq!(
            text,
            "[\n  {\"target\": \"/\", \"kind\": \"path\", \"state\": \"up\", \"latency_ms\": 0.3, \
             \"detail\": \"directory on ext4, read 21 entries\"}\n]\n"
        );
    }

    #[test]
    fn explicit_choices_win() {
        assert!(use_color(ColorChoice::Always));
        assert!(!use_color(ColorChoice::Never));
    }
}
