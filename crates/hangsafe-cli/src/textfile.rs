//! `watch --textfile PATH`: the exposition written for node_exporter's
//! textfile collector, atomically.
//!
//! Each write creates a new temporary file in PATH's directory with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` under an unpredictable name (so a
//! symbolic link or file planted there is never followed or reused),
//! writes the whole text, `fsync`s it, renames it over PATH (`rename(2)`
//! replaces a symbolic link at PATH, never follows it) and `fsync`s the
//! directory. A reader sees the old file or the new one, never a part.
//!
//! PATH must end in `.prom` (the collector reads only those), and its
//! directory must exist and not be writable by other users unless it is
//! sticky (a shared `/tmp`-like directory, where others cannot rename or
//! remove our files).

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a textfile cannot be written.
#[derive(Debug)]
pub(crate) enum TextfileError {
    /// The path is not acceptable (not `.prom`, no directory, a directory
    /// writable by others...).
    BadPath(String),
    /// Writing failed.
    Io(io::Error),
}

impl std::fmt::Display for TextfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextfileError::BadPath(why) => f.write_str(why),
            TextfileError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TextfileError {}

/// A checked textfile path.
#[derive(Debug)]
pub(crate) struct Textfile {
    path: PathBuf,
    dir: PathBuf,
    /// Temporary files made so far (part of their names).
    writes: u64,
}

impl Textfile {
    /// Checks `path` (see the module docs).
    pub(crate) fn new(path: &Path) -> Result<Textfile, TextfileError> {
        let bad = |why: &str| TextfileError::BadPath(format!("{}: {why}", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("no file name"))?;
        if !name.ends_with(".prom") || name.starts_with('.') || name == ".prom" {
            return Err(bad("the name must end in .prom and not start with '.'"));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let md = std::fs::metadata(&dir).map_err(|e| bad(&format!("its directory: {e}")))?;
        if !md.is_dir() {
            return Err(bad("its parent is not a directory"));
        }
        let mode = md.mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(bad(
                "its directory is writable by every user and not sticky: another user could replace the file",
            ));
        }
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.is_dir() {
                return Err(bad("it is a directory"));
            }
        }
        Ok(Textfile {
            path: path.to_path_buf(),
            dir,
            writes: 0,
        })
    }

    /// Replaces the file's content with `text`, atomically.
    pub(crate) fn write(&mut self, text: &str) -> Result<(), TextfileError> {
        let (tmp, mut f) = self.create_temp().map_err(TextfileError::Io)?;
        let done = f
            .write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(TextfileError::Io(e));
        }
        // The rename itself made durable (best effort: some filesystems
        // refuse fsync on a directory).
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// A new temporary file next to the target, never an existing one.
    fn create_temp(&mut self) -> io::Result<(PathBuf, File)> {
        let base = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut last = None;
        for _ in 0..16 {
            self.writes += 1;
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            // Not ending in .prom: the collector never reads a half file.
            let tmp = self.dir.join(format!(
                ".{base}.{}.{}.{nanos:x}.tmp",
                std::process::id(),
                self.writes
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no temporary name")))
    }
}
