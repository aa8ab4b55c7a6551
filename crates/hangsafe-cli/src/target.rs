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

/// Why an argument is not a valid target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError {
    /// The argument.
    pub spec: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid target {:?}: {}", self.spec, self.why)
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// Parses one command-line target.
    ///
    /// Prefixes: `path:`, `block:`, `tur:`, `tcp://`, `unix:`; anything
    /// else is a path of kind `auto`. Paths may be relative.
    pub fn parse(spec: &str) -> Result<Target, TargetError> {
        let err = |why| TargetError {
            spec: spec.to_owned(),
            why,
        };
        let path = |rest: &str| -> Result<PathBuf, TargetError> {
            if rest.is_empty() {
                Err(err("empty path"))
            } else if rest.contains('\0') {
                Err(err("path contains a NUL byte"))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        let kind = if let Some(rest) = spec.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| err("expected tcp://HOST:PORT"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(err("empty host"));
            }
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err("port must be 1-65535"))?;
            Kind::Tcp {
                host: host.to_owned(),
                port,
            }
        } else if let Some(rest) = spec.strip_prefix("unix:") {
            Kind::Unix(path(rest)?)
        } else if let Some(rest) = spec.strip_prefix("tur:") {
            Kind::Tur(path(rest)?)
        } else if let Some(rest) = spec.strip_prefix("block:") {
            Kind::Block(path(rest)?)
        } else if let Some(rest) = spec.strip_prefix("path:") {
            Kind::Path(path(rest)?)
        } else {
            Kind::Auto(path(spec)?)
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
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }
}
