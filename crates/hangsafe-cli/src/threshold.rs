//! The thresholds of `hangsafe check --format nagios`, with `check_disk`'s
//! meaning (monitoring-plugins 2.3): `--warning`/`--critical` are floors
//! of free space, as a percentage (`10%`) or a size (`500`, `2G`,
//! `1.5TiB`), and `--iwarning`/`--icritical` floors of free inodes (a
//! percentage). A filesystem is over a threshold when its free figure is
//! **at most** the floor (check_disk's inclusive range `@0:N`).
//!
//! - A percentage is compared with check_disk's free percentage: 100 minus
//!   `used / (used + available)` rounded up to a whole percent, so
//!   root-reserved blocks count neither as used nor as free
//!   ([`FsStats::free_percent`]).
//! - A size is compared in its own unit: the available bytes divided by
//!   the unit, rounded down (check_disk's `free_units` with `-u UNIT`).
//!   Units are binary whatever their spelling, as in check_disk: `B`; `k`,
//!   `kB`, `KiB` (1024); `M`, `MB`, `MiB`; `G`...; `T`...; `P`...
//!   (case-insensitive). No unit means MiB, check_disk's default.
//!
//! A leading `@` (check_disk's inside-range marker, which it adds itself)
//! is accepted and ignored. Ranges (`10:20`, `~:5`) are refused: they do
//! not mean what the plugin guidelines say in check_disk either. Every
//! value is parsed as hostile input: digits with an optional fraction only
//! (no sign, exponent, `inf` or `NaN`), a percentage at most 100, a size
//! at most 16 EiB; anything else is a typed error.

use crate::fsstats::FsStats;
use std::fmt;

/// 2^64: a size threshold must name fewer bytes than this (16 EiB), so
/// that it converts to a `u64` exactly. (`u64::MAX as f64` rounds up to
/// this very value, so a `>` test against it would let 2^64 through.)
const BYTES_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// A binary unit of a size threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Bytes per unit.
    pub bytes: u64,
    /// Its canonical name (`B`, `KiB`, `MiB`, `GiB`, `TiB`, `PiB`).
    pub name: &'static str,
}

/// The units, smallest first.
const UNITS: [Unit; 6] = [
    Unit {
        bytes: 1,
        name: "B",
    },
    Unit {
        bytes: 1 << 10,
        name: "KiB",
    },
    Unit {
        bytes: 1 << 20,
        name: "MiB",
    },
    Unit {
        bytes: 1 << 30,
        name: "GiB",
    },
    Unit {
        bytes: 1 << 40,
        name: "TiB",
    },
    Unit {
        bytes: 1 << 50,
        name: "PiB",
    },
];

/// The unit of a size with no unit: MiB, check_disk's default.
pub const DEFAULT_UNIT: Unit = UNITS[2];

/// A floor of free space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// Over when the free percentage is at most this (0 to 100).
    FreePercent(f64),
    /// Over when the available space, in `unit`s rounded down, is at
    /// most `value`.
    FreeSize {
        /// The number of units (finite, not negative, at most 16 EiB in all).
        value: f64,
        /// The unit it was given in.
        unit: Unit,
    },
}

/// Why a threshold was refused. The `Display` text follows clap's
/// `invalid value 'X' for '--warning <THRESHOLD>':`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThresholdError {
    /// Nothing (or only blanks, or only `@`) was given.
    Empty,
    /// The number is missing or malformed (a sign, an exponent, `inf`...).
    BadNumber,
    /// A unit that is not one of the accepted ones.
    BadUnit(String),
    /// A range (`10:20`, `~:5`): not accepted.
    Range,
    /// A percentage above 100.
    PercentOver100,
    /// A size above 16 EiB.
    TooLarge,
    /// An inode threshold with a size unit.
    InodeNotPercent,
}

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdError::Empty => {
                f.write_str("the threshold is empty; expected e.g. 10%, 500 (MiB) or 2G")
            }
            ThresholdError::BadNumber => f.write_str(
                "expected a number (digits, an optional fraction) followed by % or a \
                 unit, e.g. 10%, 500 (MiB), 2G or 1.5TiB",
            ),
            ThresholdError::BadUnit(u) => write!(
                f,
                "unknown unit {u:?}; use %, or B, K, M, G, T, P (also kB/KiB, MB/MiB, ...: \
                 all binary, as in check_disk; no unit means MiB)"
            ),
            ThresholdError::Range => f.write_str(
                "ranges (N:M, ~:N) are not accepted: like check_disk's, this threshold is a \
                 floor of free space (N% or a size)",
            ),
            ThresholdError::PercentOver100 => f.write_str("a percentage is at most 100%"),
            ThresholdError::TooLarge => f.write_str("the size is too large: at most 16 EiB"),
            ThresholdError::InodeNotPercent => {
                f.write_str("an inode threshold is a percentage of free inodes, e.g. 10%")
            }
        }
    }
}

impl std::error::Error for ThresholdError {}

/// Splits `input` into its number and the rest, refusing what is not a
/// plain decimal (digits with an optional fraction).
fn number(input: &str) -> Result<(f64, &str), ThresholdError> {
    let s = input.trim();
    let s = s.strip_prefix('@').unwrap_or(s).trim_start();
    if s.is_empty() {
        return Err(ThresholdError::Empty);
    }
    if s.contains([':', '~']) {
        return Err(ThresholdError::Range);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (digits, rest) = s.split_at(split);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(ThresholdError::BadNumber);
    }
    // Only digits and one '.': always a finite number (a very long one
    // rounds to a large finite value or to infinity, refused below).
    let value: f64 = digits.parse().map_err(|_| ThresholdError::BadNumber)?;
    if !value.is_finite() {
        return Err(ThresholdError::TooLarge);
    }
    Ok((value, rest.trim()))
}

/// The unit named `name` (case-insensitive; `""` is [`DEFAULT_UNIT`]).
fn unit(name: &str) -> Option<Unit> {
    let lower = name.to_ascii_lowercase();
    let prefix = match lower.as_str() {
        "" => return Some(DEFAULT_UNIT),
        "b" => return Some(UNITS[0]),
        other => other
            .strip_suffix("ib")
            .or_else(|| other.strip_suffix('b'))
            .unwrap_or(other),
    };
    let idx = match prefix {
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    Some(UNITS[idx])
}

impl Limit {
    /// Parses a space threshold: `N%` or a size `N[UNIT]`.
    pub fn parse(input: &str) -> Result<Limit, ThresholdError> {
        let (value, rest) = number(input)?;
        if rest == "%" {
            return percent(value).map(Limit::FreePercent);
        }
        let unit = unit(rest).ok_or_else(|| ThresholdError::BadUnit(rest.to_owned()))?;
        if value * unit.bytes as f64 >= BYTES_LIMIT {
            return Err(ThresholdError::TooLarge);
        }
        Ok(Limit::FreeSize { value, unit })
    }

    /// Whether `fs` is over this floor (its free figure is at most it);
    /// `None` when `fs` has no such figure (no blocks at all).
    pub fn breached(&self, fs: &FsStats) -> Option<bool> {
        match *self {
            Limit::FreePercent(p) => fs.free_percent().map(|free| free as f64 <= p),
            Limit::FreeSize { value, unit } => {
                (fs.blocks > 0).then(|| (fs.avail_bytes() / unit.bytes) as f64 <= value)
            }
        }
    }

    /// The floor as used bytes, for perfdata (check_disk's "high tide":
    /// the total minus the free floor), within `0..=total`.
    pub fn used_high_tide(&self, fs: &FsStats) -> u64 {
        let total = fs.total_bytes();
        match *self {
            // The float-to-int cast saturates (and maps NaN to 0).
            Limit::FreePercent(p) => ((1.0 - p / 100.0) * total as f64) as u64,
            Limit::FreeSize { value, unit } => {
                total.saturating_sub((value * unit.bytes as f64) as u64)
            }
        }
        .min(total)
    }

    /// How the free figure of `fs` compares, for messages: `4% free,
    /// limit 5%` or `120 MiB free, limit 500 MiB`.
    pub fn describe(&self, fs: &FsStats) -> String {
        match *self {
            Limit::FreePercent(_) => match fs.free_percent() {
                Some(free) => format!("{free}% free, limit {self}"),
                None => format!("no free figure, limit {self}"),
            },
            Limit::FreeSize { unit, .. } => format!(
                "{} {} free, limit {self}",
                fs.avail_bytes() / unit.bytes,
                unit.name
            ),
        }
    }
}

/// A percentage, at most 100.
fn percent(value: f64) -> Result<f64, ThresholdError> {
    if value > 100.0 {
        return Err(ThresholdError::PercentOver100);
    }
    Ok(value)
}

impl fmt::Display for Limit {
    /// The canonical spelling, which [`Limit::parse`] reads back as the
    /// same limit: `10%`, `500MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::FreePercent(p) => write!(f, "{p}%"),
            Limit::FreeSize { value, unit } => write!(f, "{value}{}", unit.name),
        }
    }
}

/// A floor of free inodes, in percent (`--iwarning`, `--icritical`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InodeLimit(pub f64);

impl InodeLimit {
    /// Parses `N%` or `N` (a percentage either way, as in check_disk).
    pub fn parse(input: &str) -> Result<InodeLimit, ThresholdError> {
        let (value, rest) = number(input)?;
        match rest {
            "%" | "" => percent(value).map(InodeLimit),
            _ if unit(rest).is_some() => Err(ThresholdError::InodeNotPercent),
            other => Err(ThresholdError::BadUnit(other.to_owned())),
        }
    }

    /// Whether `fs`'s free inode percentage is at most this floor; `None`
    /// when the filesystem reports no inode count.
    pub fn breached(&self, fs: &FsStats) -> Option<bool> {
        fs.inodes_free_percent().map(|free| free as f64 <= self.0)
    }

    /// The floor as used inodes, for perfdata, within `0..=files`.
    pub fn used_high_tide(&self, fs: &FsStats) -> u64 {
        (((1.0 - self.0 / 100.0) * fs.files as f64) as u64).min(fs.files)
    }
}

impl fmt::Display for InodeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(avail_mib: u64) -> FsStats {
        // 1000 MiB, 4 KiB blocks, nothing reserved.
        FsStats {
            block_size: 4096,
            bsize: 4096,
            blocks: 256_000,
            bfree: avail_mib * 256,
            bavail: avail_mib * 256,
            files: 100,
            ffree: 10,
        }
    }

    #[test]
    fn parses_check_disk_forms() {
        assert_eq!(Limit::parse("10%"), Ok(Limit::FreePercent(10.0)));
        assert_eq!(Limit::parse(" @5.5 % "), Ok(Limit::FreePercent(5.5)));
        let size = |value, i: usize| {
            Ok(Limit::FreeSize {
                value,
                unit: UNITS[i],
            })
        };
        assert_eq!(Limit::parse("500"), size(500.0, 2));
        assert_eq!(Limit::parse("2G"), size(2.0, 3));
        assert_eq!(Limit::parse("2 GB"), size(2.0, 3));
        assert_eq!(Limit::parse("1.5TiB"), size(1.5, 4));
        assert_eq!(Limit::parse("7kb"), size(7.0, 1));
        assert_eq!(Limit::parse("100B"), size(100.0, 0));
        assert_eq!(InodeLimit::parse("10"), Ok(InodeLimit(10.0)));
        assert_eq!(InodeLimit::parse("10%"), Ok(InodeLimit(10.0)));
    }

    #[test]
    fn refuses_what_is_not_a_floor() {
        use ThresholdError::*;
        for (s, e) in [
            ("", Empty),
            ("@", Empty),
            ("10:20", Range),
            ("~:5", Range),
            ("-5%", BadNumber),
            ("+5%", BadNumber),
            ("1e3", BadUnit("e3".into())),
            ("inf", BadNumber),
            ("NaN%", BadNumber),
            (".", BadNumber),
            ("1.2.3%", BadNumber),
            ("101%", PercentOver100),
            ("10 %%", BadUnit("%%".into())),
            ("5X", BadUnit("X".into())),
            ("5iB", BadUnit("iB".into())),
        ] {
            assert_eq!(Limit::parse(s), Err(e), "{s:?}");
        }
        assert_eq!(InodeLimit::parse("5G"), Err(InodeNotPercent));
        assert_eq!(InodeLimit::parse("101"), Err(PercentOver100));
    }

    #[test]
    fn display_reads_back() {
        for s in ["10%", "0.5%", "500", "2G", "1.25TiB", "3B", "0"] {
            let l = Limit::parse(s).unwrap();
            assert_eq!(Limit::parse(&l.to_string()), Ok(l), "{s}");
        }
    }

    #[test]
    fn a_floor_is_inclusive() {
        // 100 of 1000 MiB available: 10% free.
        let f = fs(100);
        assert_eq!(f.free_percent(), Some(10));
        let over = |s: &str| Limit::parse(s).unwrap().breached(&f);
        assert_eq!(over("10%"), Some(true));
        assert_eq!(over("9.9%"), Some(false));
        assert_eq!(over("100"), Some(true));
        assert_eq!(over("99"), Some(false));
        assert_eq!(over("0.1G"), Some(true)); // 0 GiB free <= 0.1
        assert_eq!(over("102400K"), Some(true));
        assert_eq!(over("102399K"), Some(false));
        assert_eq!(over("100%"), Some(true));
        let none = FsStats::default();
        assert_eq!(Limit::parse("10%").unwrap().breached(&none), None);
        assert_eq!(Limit::parse("1G").unwrap().breached(&none), None);
        // 90 of 100 inodes used: 10% free.
        assert_eq!(InodeLimit(10.0).breached(&f), Some(true));
        assert_eq!(InodeLimit(9.0).breached(&f), Some(false));
    }

    #[test]
    fn high_tides_stay_within_the_total() {
        let f = fs(100);
        let total = f.total_bytes();
        assert_eq!(Limit::FreePercent(10.0).used_high_tide(&f), total / 10 * 9);
        assert_eq!(
            Limit::parse("100").unwrap().used_high_tide(&f),
            total - 100 * 1024 * 1024
        );
        assert_eq!(Limit::parse("2P").unwrap().used_high_tide(&f), 0);
        assert_eq!(Limit::FreePercent(0.0).used_high_tide(&f), total);
        assert_eq!(InodeLimit(10.0).used_high_tide(&f), 90);
        assert_eq!(
            Limit::parse("10%").unwrap().describe(&f),
            "10% free, limit 10%"
        );
        assert_eq!(
            Limit::parse("2G").unwrap().describe(&f),
            "0 GiB free, limit 2GiB"
        );
    }

    /// H93: a size beyond what a u64 counts in bytes is refused, not
    /// wrapped or saturated into a different floor; high tides of the
    /// largest accepted sizes stay in range.
    #[test]
    fn h93_sizes_beyond_16_eib_are_refused() {
        assert_eq!(Limit::parse("16384P"), Err(ThresholdError::TooLarge));
        assert_eq!(
            Limit::parse("99999999999999999999999999999999G"),
            Err(ThresholdError::TooLarge)
        );
        assert_eq!(
            Limit::parse(&"9".repeat(400)),
            Err(ThresholdError::TooLarge)
        );
        let big = Limit::parse("16383P").unwrap();
        let f = fs(100);
        assert_eq!(big.used_high_tide(&f), 0);
        assert_eq!(big.breached(&f), Some(true));
        assert_eq!(Limit::parse(&big.to_string()), Ok(big));
    }

    /// H94: thresholds are read strictly: what strtod would take (a sign,
    /// an exponent, `inf`, `nan`, hex) or a unit check_disk would ignore
    /// is a loud error, never a different floor.
    #[test]
    fn h94_thresholds_are_parsed_strictly() {
        for s in [
            "inf%", "infinity", "NaN", "nan%", "1e3%", "-5%", "+5", "0x10", "10%%", "5 % G", "5%G",
            "١٠%", "5\u{0}%", "5 5%",
        ] {
            assert!(Limit::parse(s).is_err(), "{s:?}");
            assert!(InodeLimit::parse(s).is_err(), "{s:?}");
        }
    }
}
