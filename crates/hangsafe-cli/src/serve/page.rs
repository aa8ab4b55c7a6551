//! The status page (`GET /`): one self-contained HTML document rendered
//! on the server from the latest snapshot (no script, no external asset),
//! a table of the targets with their state in colour and, for hung
//! probes, the phase they were last seen in and for how long they have
//! been past their deadline.
//!
//! Every text taken from a target (its name, labels, detail, phase) is
//! HTML-escaped: a target name is chosen by whoever writes the config or
//! the command line, or by a mount point another user created.

use crate::duration;
use crate::report::State;
use crate::snapshot::{Row, Snapshot};
use std::fmt::Write as _;
use std::time::Instant;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped (safe in text and in quoted
/// attribute values).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The background colour of a state's cell.
fn colour(s: State) -> &'static str {
    match s {
        State::Up => "#2e7d32",
        State::Down => "#c62828",
        State::Timeout => "#ef6c00",
        State::Error => "#6a1b9a",
        State::Pending => "#546e7a",
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#eee}td.state{color:#fff;font-weight:bold}.hung{color:#b71c1c}";

/// The page for `snap` at `now`.
pub(crate) fn render(snap: &Snapshot, now: Instant) -> String {
    let mut counts = [0usize; 5];
    for r in &snap.rows {
        counts[r.state as usize] += 1;
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>hangsafe serve</title>\
         <style>{STYLE}</style></head><body>\n<h1>hangsafe serve</h1>\n\
         <p id=\"summary\">{} up, {} down, {} timed out, {} error, {} pending; round {}; \
         abandoned threads: {} ({} since start)</p>\n\
         <table id=\"targets\"><thead><tr><th>Target</th><th>Kind</th><th>State</th>\
         <th>Latency</th><th>Hung probe</th><th>Detail</th></tr></thead><tbody>\n",
        counts[State::Up as usize],
        counts[State::Down as usize],
        counts[State::Timeout as usize],
        counts[State::Error as usize],
        counts[State::Pending as usize],
        snap.round,
        snap.pool.threads_abandoned,
        snap.pool.abandoned_total,
    );
    for r in &snap.rows {
        row(&mut out, r, now);
    }
    out.push_str("</tbody></table>\n<p><a href=\"/metrics\">/metrics</a></p>\n</body></html>\n");
    out
}

fn row(out: &mut String, r: &Row, now: Instant) {
    let hung = match &r.hung {
        Some(h) => {
            let phase = r
                .hung_phase()
                .filter(|p| !p.is_empty())
                .unwrap_or("unknown");
            let in_phase = h
                .phase
                .as_ref()
                .map(|(_, since)| duration::format_latency(now.saturating_duration_since(*since)));
            format!(
                "<span class=\"hung\">#{} in {}{} ({} past its deadline)</span>",
                h.id,
                escape(phase),
                in_phase.map_or(String::new(), |d| format!(" for {d}")),
                duration::format_latency(r.hung_for(now)),
            )
        }
        None => match &r.probing {
            Some(p) => format!(
                "probing #{} in {}",
                p.id,
                escape(p.phase.as_ref().map_or("?", |(ph, _)| ph.as_str()))
            ),
            None => String::new(),
        },
    };
    let _ = writeln!(
        out,
        "<tr data-state=\"{state}\"><td class=\"target\">{}</td><td>{}</td>\
         <td class=\"state\" style=\"background:{}\">{state}</td><td>{}</td><td>{hung}</td><td>{}</td></tr>",
        escape(&r.target),
        escape(r.kind),
        colour(r.state),
        r.latency.map_or("-".to_owned(), duration::format_latency),
        escape(&r.detail),
        state = r.state.as_str(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
