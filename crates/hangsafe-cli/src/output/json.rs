//! The JSON of `--json`.

use crate::report::Report;

/// The JSON array of `--json`: one object per report with exactly the
/// keys `target`, `kind`, `state`, `latency_ms` and `detail`, in that
/// order, one object per line; newline-terminated.
pub(crate) fn render_json(reports: &[Report]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::reports;

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
}
