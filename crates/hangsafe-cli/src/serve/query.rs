//! Query strings of requests, taken as hostile input: percent-decoding
//! that refuses malformed escapes and non-UTF-8, a bounded length, known
//! keys only, each at most once. Every refusal is a typed error the
//! server answers with `400 Bad Request` and the reason.

use std::collections::BTreeMap;
use std::fmt;

/// The longest query string accepted, in bytes.
pub(crate) const MAX_QUERY: usize = 4096;

/// Why a query string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// Longer than [`MAX_QUERY`].
    TooLong,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// A key this endpoint does not take.
    UnknownKey(String),
    /// A key given twice.
    Repeated(String),
    /// A required key is missing.
    Missing(&'static str),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::TooLong => write!(f, "query string longer than {MAX_QUERY} bytes"),
            QueryError::BadEscape => f.write_str("malformed percent-escape in the query string"),
            QueryError::NotUtf8 => f.write_str("the query string is not UTF-8 once decoded"),
            QueryError::UnknownKey(k) => write!(f, "unknown query parameter {k:?}"),
            QueryError::Repeated(k) => write!(f, "query parameter {k:?} given more than once"),
            QueryError::Missing(k) => write!(f, "missing query parameter {k:?}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub(crate) fn decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(QueryError::BadEscape);
                };
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

/// The parameters of query string `q`, restricted to `keys`.
pub(crate) fn parse(q: &str, keys: &[&str]) -> Result<BTreeMap<String, String>, QueryError> {
    if q.len() > MAX_QUERY {
        return Err(QueryError::TooLong);
    }
    let mut out = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        if !keys.contains(&k.as_str()) {
            return Err(QueryError::UnknownKey(k));
        }
        if out.contains_key(&k) {
            return Err(QueryError::Repeated(k));
        }
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        assert_eq!(decode("a%2Fb+c").unwrap(), "a/b c");
        assert_eq!(decode("%"), Err(QueryError::BadEscape));
        assert_eq!(decode("%4"), Err(QueryError::BadEscape));
        assert_eq!(decode("%zz"), Err(QueryError::BadEscape));
        assert_eq!(decode("%ff"), Err(QueryError::NotUtf8));
        let p = parse("target=%2Ftmp&timeout=1s", &["target", "timeout"]).unwrap();
        assert_eq!(p["target"], "/tmp");
        assert!(matches!(
            parse("target=a&target=b", &["target"]),
            Err(QueryError::Repeated(_))
        ));
        assert!(matches!(
            parse("x=1", &["target"]),
            Err(QueryError::UnknownKey(_))
        ));
        assert_eq!(
            parse(&"a".repeat(MAX_QUERY + 1), &["a"]),
            Err(QueryError::TooLong)
        );
    }
}
