//! The configuration file of `watch` and `serve` (TOML, `--config FILE`).
//!
//! ```toml
//! interval = "5s"            # default for every target
//! timeout = "2s"
//! mounts = true              # also watch every mount point (as with no TARGET)
//! mount_points_exclude = "^/(dev|proc|run|sys)($|/)"
//! fs_types_exclude = "^(autofs|proc|sysfs|tmpfs)$"
//!
//! [[target]]
//! target = "/mnt/nfs"        # any form `check` accepts
//! timeout = "3s"             # per target (optional)
//! interval = "30s"
//! labels = { team = "storage" }
//! ```
//!
//! Unknown keys are errors (a typo must not silently change what is
//! watched), and every error carries the line and column of the offending
//! value, from the TOML parser's spans. The exclusions are regular
//! expressions matched against a mount's mount point and filesystem type,
//! as node_exporter's `--collector.filesystem.mount-points-exclude` and
//! `--collector.filesystem.fs-types-exclude` are; they apply to the mount
//! points found with `mounts = true`, not to targets named explicitly.

use crate::duration;
use crate::target::Target;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The largest configuration file read, in bytes (a file is a handful of
/// lines; anything this big is a mistake or hostile).
pub const MAX_BYTES: usize = 1 << 20;

/// The most targets a file may name.
pub const MAX_TARGETS: usize = 10_000;

/// Label names a user label may not take: the exporter's own.
pub const RESERVED_LABELS: &[&str] = &[
    "target",
    "kind",
    "state",
    "phase",
    "device",
    "mountpoint",
    "fstype",
];

/// A parsed, validated configuration file.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Default interval between probes, if set.
    pub interval: Option<Duration>,
    /// Default probe timeout, if set.
    pub timeout: Option<Duration>,
    /// Whether every mount point is watched as well.
    pub mounts: bool,
    /// Mount points matching this are not watched (with `mounts`).
    pub mount_points_exclude: Option<Regex>,
    /// Filesystem types matching this are not watched (with `mounts`).
    pub fs_types_exclude: Option<Regex>,
    /// The targets named in the file, in order.
    pub targets: Vec<TargetConfig>,
}

/// One `[[target]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    /// The target.
    pub target: Target,
    /// Its own timeout, if any.
    pub timeout: Option<Duration>,
    /// Its own interval, if any.
    pub interval: Option<Duration>,
    /// Extra labels on its series (sorted by name).
    pub labels: BTreeMap<String, String>,
}

/// Why a configuration file was refused: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column (in characters), if known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file as TOML gives it, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    mounts: bool,
    mount_points_exclude: Option<Spanned<String>>,
    fs_types_exclude: Option<Spanned<String>>,
    #[serde(default)]
    target: Vec<RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    target: Spanned<String>,
    timeout: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, Spanned<String>>,
}

type Spanned<T> = toml::Spanned<T>;

/// Parses and validates the text of a configuration file.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    if text.len() > MAX_BYTES {
        return Err(ConfigError {
            line: None,
            column: None,
            message: format!("the file is larger than {MAX_BYTES} bytes"),
        });
    }
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        line: e.span().map(|s| position(text, s.start).0),
        column: e.span().map(|s| position(text, s.start).1),
        message: e.message().trim_end().to_owned(),
    })?;
    Validator { text }.config(raw)
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut before = &text.as_bytes()[..offset];
    // A span inside a multi-byte character: back up to its start.
    while !before.is_empty() && std::str::from_utf8(before).is_err() {
        before = &before[..before.len() - 1];
    }
    let before = std::str::from_utf8(before).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Turns spanned raw values into checked ones, with positions in errors.
struct Validator<'a> {
    text: &'a str,
}

impl Validator<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: String) -> ConfigError {
        let (line, column) = position(self.text, at.span().start);
        ConfigError {
            line: Some(line),
            column: Some(column),
            message,
        }
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.target.len() > MAX_TARGETS {
            return Err(ConfigError {
                line: None,
                column: None,
                message: format!("more than {MAX_TARGETS} targets"),
            });
        }
        Ok(Config {
            interval: self.duration(raw.interval.as_ref(), "interval")?,
            timeout: self.duration(raw.timeout.as_ref(), "timeout")?,
            mounts: raw.mounts,
            mount_points_exclude: self.regex(raw.mount_points_exclude.as_ref())?,
            fs_types_exclude: self.regex(raw.fs_types_exclude.as_ref())?,
            targets: raw
                .target
                .into_iter()
                .map(|t| self.target(t))
                .collect::<Result<_, _>>()?,
        })
    }

    fn duration(
        &self,
        v: Option<&Spanned<String>>,
        what: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        match duration::parse(v.get_ref()) {
            Ok(d) if d.is_zero() => Err(self.err(v, format!("{what} must not be zero"))),
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(self.err(v, format!("{what}: {e}"))),
        }
    }

    fn regex(&self, v: Option<&Spanned<String>>) -> Result<Option<Regex>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        regex::RegexBuilder::new(v.get_ref())
            // Bounded compile: a hostile pattern is an error, not a
            // gigabyte of automaton.
            .size_limit(1 << 20)
            .build()
            .map(Some)
            .map_err(|e| self.err(v, format!("bad regular expression: {e}")))
    }

    fn target(&self, t: RawTarget) -> Result<TargetConfig, ConfigError> {
        let target =
            Target::parse(t.target.get_ref()).map_err(|e| self.err(&t.target, e.to_string()))?;
        let mut labels = BTreeMap::new();
        for (k, v) in t.labels {
            self.label_name(&k)?;
            if v.get_ref().len() > 1024 {
                return Err(self.err(&v, "label value longer than 1024 bytes".to_owned()));
            }
            labels.insert(k.into_inner(), v.into_inner());
        }
        Ok(TargetConfig {
            target,
            timeout: self.duration(t.timeout.as_ref(), "timeout")?,
            interval: self.duration(t.interval.as_ref(), "interval")?,
            labels,
        })
    }

    /// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved, not `__*`.
    fn label_name(&self, k: &Spanned<String>) -> Result<(), ConfigError> {
        let name = k.get_ref();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 128;
        if !valid {
            return Err(self.err(
                k,
                format!("invalid label name {name:?} (letters, digits and '_', not first a digit)"),
            ));
        }
        if name.starts_with("__") || RESERVED_LABELS.contains(&name.as_str()) {
            return Err(self.err(k, format!("label name {name:?} is reserved")));
        }
        Ok(())
    }
}

impl Config {
    /// Whether a mount point found with `mounts = true` is excluded.
    pub fn excludes(&self, mountpoint: &str, fstype: &str) -> bool {
        self.mount_points_exclude
            .as_ref()
            .is_some_and(|r| r.is_match(mountpoint))
            || self
                .fs_types_exclude
                .as_ref()
                .is_some_and(|r| r.is_match(fstype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = parse(
            "interval = \"5s\"\ntimeout = \"2s\"\nmounts = true\n\
             mount_points_exclude = \"^/(dev|proc)($|/)\"\nfs_types_exclude = \"^tmpfs$\"\n\
             [[target]]\ntarget = \"/mnt/nfs\"\ntimeout = \"3s\"\nlabels = { team = \"storage\" }\n\
             [[target]]\ntarget = \"tcp://db:5432\"\ninterval = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(c.interval, Some(Duration::from_secs(5)));
        assert!(c.mounts);
        assert!(c.excludes("/proc/sys", "proc"));
        assert!(c.excludes("/run", "tmpfs"));
        assert!(!c.excludes("/home", "ext4"));
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[0].labels["team"], "storage");
        assert_eq!(c.targets[1].interval, Some(Duration::from_secs(60)));
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("interval = \"5s\"\n[[target]]\ntarget = \"db:5432\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(10)), "{e}");
        let e = parse("interval = \"5s\"\ntimeout = \"fast\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(11)), "{e}");
        let e = parse("intervall = \"5s\"\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.message.contains("intervall"), "{e}");
        let e = parse("[[target]]\ntarget = \"/x\"\nlabels = { state = \"a\" }\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse("mount_points_exclude = \"(\"\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(24)), "{e}");
        assert!(parse("[[target]]\ntarget = \"/x\"\nbogus = 1\n").is_err());
        assert!(parse("timeout = \"0s\"\n").is_err());
    }

    #[test]
    fn the_example_in_contrib_parses() {
        let c = parse(include_str!("../../../contrib/hangsafe.toml")).unwrap();
        assert!(c.mounts);
        assert!(c.excludes("/proc", "proc"));
        assert!(c.excludes("/var/lib/docker/overlay2/x/merged", "overlay"));
        assert!(!c.excludes("/home", "ext4"));
        let uncommented: String = include_str!("../../../contrib/hangsafe.toml")
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.starts_with('[') || r.contains(" = "))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        // The commented-out targets are valid too, once uncommented.
        let c = parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(c.targets.len(), 2);
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é = 1", 3), (1, 3));
        assert_eq!(position("é", 1), (1, 1));
        assert_eq!(position("", 10), (1, 1));
    }
}
