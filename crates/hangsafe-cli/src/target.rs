//! What the user names on the command line, and how its kind is decided.
//!
//! A target's kind is forced with a prefix or detected from the argument's
//! shape *without touching the filesystem* (a `stat` on the main thread
//! could hang on the very mount being checked): a plain path is `auto`,
//! and its probe decides on its own runner whether it is a block device
//! or anything else.

use std::fmt;
use std::path::PathBuf;

/// A target as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The argument exactly as given (the report's `target` column).
    pub spec: String,
    /// What to probe.
    pub kind: Kind,
}

/// What kind of probe a target gets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A plain path: a block device gets the block probe, anything else
    /// the path probe (decided by `stat` on the probe's runner).
    Auto(PathBuf),
    /// `path:P` — statfs, stat, then open and read the first block.
    Path(PathBuf),
    /// `block:P` — an `O_DIRECT` read of sector 0.
    Block(PathBuf),
    /// `tur:P` — SCSI TEST UNIT READY through `SG_IO`.
    Tur(PathBuf),
    /// `tcp://HOST:PORT` — a non-blocking connect.
    Tcp {
        /// Host name or address (IPv6 in brackets in the spec).
        host: String,
        /// Port.
        port: u16,
    },
    /// `unix:P` — a connect to a unix stream socket.
    Unix(PathBuf),
}

impl Kind {
    /// The name shown in reports: `path`, `block`, `tur`, `tcp`, `unix`
    /// (`auto` reports as `path` until its probe found a block device).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Auto(_) | Kind::Path(_) => "path",
            Kind::Block(_) => "block",
            Kind::Tur(_) => "tur",
            Kind::Tcp { .. } => "tcp",
            Kind::Unix(_) => "unix",
        }
    }
}

/// The accepted forms of a target, for error messages.
pub const FORMS: &str = "PATH, ./PATH, path:PATH, block:DEV, tur:DEV, tcp://HOST:PORT, unix:PATH";

/// Why an argument is not a valid target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError {
    /// The argument.
    pub spec: String,
    /// What is wrong with it, with a hint.
    pub why: String,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid target {:?}: {}; accepted forms: {FORMS}",
            self.spec, self.why
        )
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// Parses one command-line target.
    ///
    /// Prefixes: `path:`, `block:`, `tur:`, `tcp://`, `unix:`; anything
    /// else is a path of kind `auto`. Paths may be relative, but a
    /// relative path whose first component contains `:` (`http://x`,
    /// `tcp:h:1`, `host:22`) is refused: it is a URL, a scheme this
    /// command does not know or a `HOST:PORT`, far more often than a file
    /// name. Such a file is named `./NAME` or `path:NAME`, which the error
    /// says.
    pub fn parse(spec: &str) -> Result<Target, TargetError> {
        let err = |why: String| TargetError {
            spec: spec.to_owned(),
            why,
        };
        let kind = if let Some(rest) = spec.strip_prefix("tcp://") {
            let (host, port) = parse_host_port(rest).map_err(err)?;
            Kind::Tcp { host, port }
        } else if let Some(rest) = spec.strip_prefix("unix:") {
            Kind::Unix(path(rest).map_err(err)?)
        } else if let Some(rest) = spec.strip_prefix("tur:") {
            Kind::Tur(path(rest).map_err(err)?)
        } else if let Some(rest) = spec.strip_prefix("block:") {
            Kind::Block(path(rest).map_err(err)?)
        } else if let Some(rest) = spec.strip_prefix("path:") {
            Kind::Path(path(rest).map_err(err)?)
        } else {
            if let Some(why) = colon_in_first_component(spec) {
                return Err(err(why));
            }
            Kind::Auto(path(spec).map_err(err)?)
        };
        Ok(Target {
            spec: spec.to_owned(),
            kind,
        })
    }

    /// A path target of kind `auto` (mount points found in mountinfo).
    pub fn from_path(p: PathBuf) -> Target {
        Target {
            spec: p.to_string_lossy().into_owned(),
            kind: Kind::Auto(p),
        }
    }
}

/// The canonical spelling of a target's kind: parsing it gives the same
/// kind back (for targets made by [`Target::parse`]).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |p: &PathBuf| p.to_string_lossy().into_owned();
        match &self.kind {
            Kind::Auto(x) => f.write_str(&p(x)),
            Kind::Path(x) => write!(f, "path:{}", p(x)),
            Kind::Block(x) => write!(f, "block:{}", p(x)),
            Kind::Tur(x) => write!(f, "tur:{}", p(x)),
            Kind::Unix(x) => write!(f, "unix:{}", p(x)),
            Kind::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Kind::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// A path after its prefix: not empty, no NUL byte.
fn path(rest: &str) -> Result<PathBuf, String> {
    if rest.is_empty() {
        Err("empty path".to_owned())
    } else if rest.contains('\0') {
        Err("the path contains a NUL byte".to_owned())
    } else {
        Ok(PathBuf::from(rest))
    }
}

/// `HOST:PORT` of a `tcp://` target (an optional trailing `/` is
/// allowed). HOST is a name or an IPv4 address (letters, digits, `.`, `-`,
/// `_`) or an IPv6 address in brackets (hex digits, `:`, `.`, and a `%`
/// zone); PORT is 1 to 65535.
fn parse_host_port(rest: &str) -> Result<(String, u16), String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| "expected tcp://HOST:PORT (IPv6: tcp://[ADDR]:PORT)".to_owned())?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("the port must be a number from 1 to 65535, not {port:?}"))?;
    let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '%' | '-' | '_');
        if !v6.contains(':') || !v6.chars().all(ok) {
            return Err(format!("{v6:?} in brackets is not an IPv6 address"));
        }
        v6
    } else {
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets: tcp://[ADDR]:PORT".to_owned());
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if !host.chars().all(ok) {
            return Err(format!(
                "{host:?} is not a host name or address (letters, digits, '.', '-', '_')"
            ));
        }
        host
    };
    if host.is_empty() {
        return Err("empty host; expected tcp://HOST:PORT".to_owned());
    }
    Ok((host.to_owned(), port))
}

/// Why a plain (unprefixed) argument is refused as a path: a relative
/// path whose first component contains `:`. `None` if it is fine.
fn colon_in_first_component(spec: &str) -> Option<String> {
    if spec.starts_with('/') || spec.starts_with('.') {
        return None;
    }
    let first = spec.split('/').next().unwrap_or(spec);
    let (before, after) = first.split_once(':')?;
    let escape = format!("for a file of that name write ./{spec} or path:{spec}");
    let scheme = !before.is_empty()
        && before.starts_with(|c: char| c.is_ascii_alphabetic())
        && before
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let port = !after.is_empty() && after.bytes().all(|b| b.is_ascii_digit());
    let what = if port && !before.is_empty() {
        format!("this looks like HOST:PORT; for TCP write tcp://{first}")
    } else if before == "tcp" {
        "a TCP target is written tcp://HOST:PORT".to_owned()
    } else if scheme {
        format!("unknown scheme {before:?}")
    } else {
        "a relative path with ':' in its first component is ambiguous".to_owned()
    };
    Some(format!("{what}; {escape}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_prefixes_and_shapes() {
        let k = |s| Target::parse(s).unwrap().kind;
        assert_eq!(k("/mnt/nfs"), Kind::Auto("/mnt/nfs".into()));
        assert_eq!(k("path:/dev/sda"), Kind::Path("/dev/sda".into()));
        assert_eq!(k("block:/dev/sda"), Kind::Block("/dev/sda".into()));
        assert_eq!(k("tur:/dev/sg0"), Kind::Tur("/dev/sg0".into()));
        assert_eq!(k("unix:/run/x.sock"), Kind::Unix("/run/x.sock".into()));
        assert_eq!(
            k("tcp://example.com:443"),
            Kind::Tcp {
                host: "example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            k("tcp://[::1]:22"),
            Kind::Tcp {
                host: "::1".into(),
                port: 22
            }
        );
    }

    #[test]
    fn bad_targets_are_errors() {
        for bad in [
            "",
            "tcp://host",
            "tcp://:80",
            "tcp://h:0",
            "tcp://h:99999",
            "unix:",
            "tur:",
            "http://127.0.0.1:80",
            "udp://127.0.0.1:53",
            "tcp:127.0.0.1:1",
            "127.0.0.1:7101",
            "localhost:22",
            "file:///etc",
            "tcp://::1:22",
            "tcp://a b:80",
            "tcp://[x]:80",
            "tcp://[]:80",
            "tcp://h/x:80",
            "a:b",
            "a\0b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn colons_have_an_escape_hatch() {
        let k = |s| Target::parse(s).unwrap().kind;
        assert_eq!(k("./a:b"), Kind::Auto("./a:b".into()));
        assert_eq!(k("path:a:b"), Kind::Path("a:b".into()));
        assert_eq!(k("/mnt/a:b"), Kind::Auto("/mnt/a:b".into()));
        assert_eq!(k("dir/a:b"), Kind::Auto("dir/a:b".into()));
        let e = Target::parse("a:b").unwrap_err().to_string();
        assert!(e.contains("./a:b") && e.contains("path:a:b"), "{e}");
        let e = Target::parse("db:5432").unwrap_err().to_string();
        assert!(e.contains("tcp://db:5432"), "{e}");
        let e = Target::parse("http://x").unwrap_err().to_string();
        assert!(
            e.contains("unknown scheme \"http\"") && e.contains(FORMS),
            "{e}"
        );
    }

    #[test]
    fn display_is_canonical() {
        for (spec, shown) in [
            ("/mnt/nfs", "/mnt/nfs"),
            ("tcp://[::1]:22/", "tcp://[::1]:22"),
            ("tcp://db:5432", "tcp://db:5432"),
            ("path:a:b", "path:a:b"),
            ("unix:/run/x", "unix:/run/x"),
        ] {
            let t = Target::parse(spec).unwrap();
            assert_eq!(t.to_string(), shown);
            assert_eq!(Target::parse(shown).unwrap().kind, t.kind);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A parsed target's canonical form parses to the same kind, and
        /// is its own canonical form.
        fn round_trips(s: &str) -> Result<(), TestCaseError> {
            if let Ok(t) = Target::parse(s) {
                let shown = t.to_string();
                let again = Target::parse(&shown);
                prop_assert!(again.is_ok(), "{s:?} -> {shown:?}: {again:?}");
                let again = again.unwrap();
                prop_assert_eq!(&again.kind, &t.kind);
                prop_assert_eq!(again.to_string(), shown);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn any_input_is_safe(s in ".{0,40}") {
                round_trips(&s)?;
            }

            #[test]
            fn shaped_input_round_trips(
                prefix in prop_oneof![
                    Just(""), Just("path:"), Just("block:"), Just("tur:"), Just("unix:"),
                    Just("tcp://"), Just("tcp://["), Just("./"), Just("/"), Just("http://"),
                ],
                body in "[a-z0-9:./\\[\\]%_ -]{0,20}",
                port in proptest::option::of(0u32..70000),
            ) {
                let s = match port {
                    Some(p) => format!("{prefix}{body}:{p}"),
                    None => format!("{prefix}{body}"),
                };
                round_trips(&s)?;
            }
        }
    }
}
