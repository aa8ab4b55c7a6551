//! The list of targets `watch` and `serve` probe, with their settings:
//! from the command line, a configuration file ([`hangsafe_cli::config`]),
//! or every mount point; each path target with the mount it is on (the
//! exporter's `device`, `mountpoint` and `fstype` labels).
//!
//! The mount of a path is found lexically (the longest mount point that
//! is a prefix of the absolute path, component by component): nothing on
//! the path is touched, since a `stat` here could hang on the very mount
//! being checked. A symbolic link on the path therefore yields the mount
//! of the link's own directory.

use crate::cmd::watch::Watched;
use crate::config::Config;
use crate::mounts::{self, Mount};
use crate::target::{Kind, Target};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// What the list is built from.
#[derive(Debug)]
pub(crate) struct Sources<'a> {
    /// The targets named on the command line.
    pub cli: &'a [String],
    /// The configuration file, if any.
    pub config: Option<&'a Config>,
    /// The default timeout (command line or built in).
    pub timeout: Duration,
    /// With every mount point: include pseudo filesystems.
    pub all: bool,
}

/// Why the list could not be built, and the exit status that says so.
#[derive(Debug)]
pub(crate) struct ListError {
    /// What went wrong.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

/// The targets of `src`, deduplicated by spec, the mount table read by
/// `deadline`. Every mount point is watched when neither the command line
/// nor the file names a target, or the file says `mounts = true`.
pub(crate) fn build(src: &Sources<'_>, deadline: Instant) -> Result<Vec<Watched>, ListError> {
    let table = mounts::read_mounts(deadline);
    let default_timeout = src.config.and_then(|c| c.timeout).unwrap_or(src.timeout);
    let mut list = Vec::new();
    for spec in src.cli {
        let target = Target::parse(spec).map_err(|e| ListError {
            message: e.to_string(),
            code: crate::exit::USAGE.code,
        })?;
        list.push(Watched::plain(target, src.timeout));
    }
    if let Some(c) = src.config {
        for t in &c.targets {
            let mut w = Watched::plain(t.target.clone(), t.timeout.unwrap_or(default_timeout));
            w.interval = t.interval;
            w.labels = t.labels.clone();
            list.push(w);
        }
    }
    let want_mounts = src.config.is_some_and(|c| c.mounts) || list.is_empty();
    if want_mounts {
        let table = table.as_ref().map_err(|e| ListError {
            message: e.to_string(),
            code: match e {
                mounts::MountsError::TimedOut(_) => crate::exit::TIMEOUT.code,
                _ => crate::exit::NO_MOUNTINFO.code,
            },
        })?;
        for m in table {
            let point = m.point.to_string_lossy();
            if (!src.all && mounts::is_pseudo(&m.fstype))
                || src.config.is_some_and(|c| c.excludes(&point, &m.fstype))
            {
                continue;
            }
            list.push(Watched::plain(
                Target::from_path(m.point.clone()),
                default_timeout,
            ));
        }
    }
    let mut seen = HashSet::new();
    list.retain(|w| seen.insert(w.target.spec.clone()));
    if let Ok(table) = &table {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        for w in &mut list {
            w.mount = path_of(&w.target).and_then(|p| mount_of(table, &cwd.join(p)));
        }
    }
    Ok(list)
}

/// How long reading the configuration file may take (it may sit on a
/// hung filesystem itself).
const CONFIG_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and parses the configuration file `path` on a runner with a
/// deadline; the error says the file and, for a bad file, the line and
/// column.
pub(crate) fn load_config(path: &Path) -> Result<Config, String> {
    let p = path.to_path_buf();
    let read = hangsafe::runner::Builder::new()
        .timeout(CONFIG_READ_TIMEOUT)
        .spawn(move |_| -> std::io::Result<Vec<u8>> {
            use std::io::Read as _;
            let mut buf = Vec::new();
            std::fs::File::open(&p)?
                .take(crate::config::MAX_BYTES as u64 + 1)
                .read_to_end(&mut buf)?;
            Ok(buf)
        })
        .map_err(|e| format!("{}: {e}", path.display()))?
        .wait();
    let bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(format!("{}: {e}", path.display())),
        Err(e) => return Err(format!("{}: not read: {e}", path.display())),
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
    crate::config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The path of a filesystem target (`auto` and `path:`), if it is one.
fn path_of(t: &Target) -> Option<&Path> {
    match &t.kind {
        Kind::Auto(p) | Kind::Path(p) => Some(p),
        _ => None,
    }
}

/// The mount `p` (absolute) is on, lexically: the longest mount point
/// that is a component-wise prefix of `p` with `.` and `..` resolved.
pub(crate) fn mount_of(table: &[Mount], p: &Path) -> Option<Mount> {
    let p = normalize(p);
    table
        .iter()
        .filter(|m| p.starts_with(&m.point))
        .max_by_key(|m| m.point.components().count())
        .cloned()
}

/// `p` with `.` removed and `..` applied lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(point: &str, fstype: &str) -> Mount {
        Mount {
            point: point.into(),
            fstype: fstype.into(),
            source: "dev".into(),
            readonly: false,
        }
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let t = [m("/", "ext4"), m("/mnt", "tmpfs"), m("/mnt/nfs", "nfs4")];
        let at = |p: &str| mount_of(&t, Path::new(p)).map(|m| m.fstype);
        assert_eq!(at("/mnt/nfs/a/b").as_deref(), Some("nfs4"));
        assert_eq!(at("/mnt/nfsx").as_deref(), Some("tmpfs"));
        assert_eq!(at("/mnt/nfs/../x").as_deref(), Some("tmpfs"));
        assert_eq!(at("/etc").as_deref(), Some("ext4"));
        assert_eq!(at("/mnt/./nfs").as_deref(), Some("nfs4"));
    }
}
