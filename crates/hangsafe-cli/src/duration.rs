//! Human-friendly durations: parsing option values such as `--timeout 1.5s`
//! and formatting durations back for people.
//!
//! Accepted input: a decimal number, optionally followed by a unit.
//!
//! | unit   | meaning      | example |
//! |--------|--------------|---------|
//! | *none* | seconds      | `2`     |
//! | `ms`   | milliseconds | `500ms` |
//! | `s`    | seconds      | `1.5s`  |
//! | `m`    | minutes      | `1m`    |
//! | `h`    | hours        | `1h`    |
//! | `d`    | days         | `1d`    |
//!
//! Parsing is exact (no floating point): `0.1s` is exactly 100 ms. Digits
//! beyond nanosecond precision are truncated.
//!
//! Every duration is at most [`MAX`] (7 days): larger values are refused
//! at parse time ([`DurationError::TooLarge`]), so no option value can
//! overflow the clock arithmetic (`Instant + Duration`) of the commands.

use std::fmt;
use std::time::{Duration, Instant};

/// Nanoseconds in a millisecond.
const NANOS_PER_MS: u128 = 1_000_000;
/// Nanoseconds in a second.
const NANOS_PER_S: u128 = 1_000_000_000;
/// Nanoseconds in a minute.
const NANOS_PER_M: u128 = 60 * NANOS_PER_S;
/// Nanoseconds in an hour.
const NANOS_PER_H: u128 = 60 * NANOS_PER_M;
/// Nanoseconds in a day.
const NANOS_PER_D: u128 = 24 * NANOS_PER_H;

/// The largest duration accepted: 7 days. Far above any sensible probe
/// timeout or watch interval, and far below what `Instant` arithmetic
/// can hold.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Fractional digits looked at; more cannot change the result at
/// nanosecond precision for any supported unit (at most 8.64e13 ns per unit).
const MAX_FRACTION_DIGITS: usize = 18;

/// Why a duration string was rejected. The `Display` text is meant to be
/// shown after clap's `invalid value 'X' for '--timeout <DURATION>':`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing (or only blanks) was given.
    Empty,
    /// The numeric part is missing or malformed (`abc`, `1.2.3`, `-1s`).
    BadNumber,
    /// The unit is not one of the supported ones.
    BadUnit(String),
    /// The duration is zero: a zero deadline would fail every probe.
    Zero,
    /// The duration is above [`MAX`].
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => {
                f.write_str("the duration is empty; expected e.g. 500ms, 2s, 1.5s or 1m")
            }
            DurationError::BadNumber => f.write_str(
                "expected a positive number with an optional unit \
                 (ms, s, m, h, d; no unit means seconds), e.g. 500ms, 2s, 1.5s or 1m",
            ),
            DurationError::BadUnit(unit) => write!(
                f,
                "unknown unit {unit:?}; use ms, s, m, h or d (no unit means seconds)"
            ),
            DurationError::Zero => f.write_str("the duration must be greater than zero"),
            DurationError::TooLarge => f.write_str("the duration is too large: at most 7d (168h)"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a positive duration such as `500ms`, `2s`, `1.5s`, `1m` or `2`
/// (seconds). Blanks around the value and between number and unit are
/// ignored. Zero and anything above [`MAX`] are rejected.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos = match unit.trim_start() {
        "" | "s" => NANOS_PER_S,
        "ms" => NANOS_PER_MS,
        "m" => NANOS_PER_M,
        "h" => NANOS_PER_H,
        "d" => NANOS_PER_D,
        _ if number.is_empty() => return Err(DurationError::BadNumber),
        other => return Err(DurationError::BadUnit(other.to_owned())),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(DurationError::BadNumber);
    }

    let whole_nanos = digits_value(whole)
        .and_then(|w| w.checked_mul(unit_nanos))
        .ok_or(DurationError::TooLarge)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    // fraction < 10^18 and unit_nanos < 10^14: the product fits in a u128.
    let scale = fraction.bytes().fold(1u128, |acc, _| acc * 10);
    let fraction_nanos = digits_value(fraction).unwrap_or(0) * unit_nanos / scale;
    let nanos = whole_nanos
        .checked_add(fraction_nanos)
        .ok_or(DurationError::TooLarge)?;
    if nanos == 0 {
        return Err(DurationError::Zero);
    }
    if nanos > MAX.as_nanos() {
        return Err(DurationError::TooLarge);
    }
    // At most 7 days: the seconds fit in a u64 and the remainder, below
    // 10^9, in a u32.
    Ok(Duration::new(
        (nanos / NANOS_PER_S) as u64,
        (nanos % NANOS_PER_S) as u32,
    ))
}

/// `t + d`, saturating: the latest instant the clock can represent on the
/// way to it if `t + d` overflows. Never panics (`Instant + Duration`
/// does).
pub fn after(t: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(later) = t.checked_add(d) {
            return later;
        }
        if d.is_zero() {
            return t;
        }
        d /= 2;
    }
}

/// The value of a string of ASCII digits; `None` on overflow. The empty
/// string is zero.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

/// Formats a duration exactly, in the largest unit that keeps it short:
/// `2s`, `1m`, `1.5s`, `500ms`, `90s`, `1h`, `2d`. For a duration of at
/// most [`MAX`], the result is accepted by [`parse`] and denotes the same
/// duration (for whole nanoseconds).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos.is_multiple_of(NANOS_PER_D) {
        format!("{}d", nanos / NANOS_PER_D)
    } else if nanos.is_multiple_of(NANOS_PER_H) {
        format!("{}h", nanos / NANOS_PER_H)
    } else if nanos.is_multiple_of(NANOS_PER_M) {
        format!("{}m", nanos / NANOS_PER_M)
    } else if nanos >= NANOS_PER_S {
        format!("{}s", decimal(nanos, NANOS_PER_S, 9))
    } else {
        format!("{}ms", decimal(nanos, NANOS_PER_MS, 6))
    }
}

/// `value / unit` as a decimal number without trailing zeros; `unit` is
/// `10^places`.
fn decimal(value: u128, unit: u128, places: usize) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0places$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Formats a measured latency for a table: `<0.1ms`, `0.3ms` and `4.2ms`
/// below 10 ms, `123ms` below a second, `1.25s` above.
pub fn format_latency(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 50 {
        "<0.1ms".to_owned()
    } else if micros < 9_950 {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else if micros < 999_500 {
        format!("{:.0}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("2s"), Ok(ms(2000)));
        assert_eq!(parse("1m"), Ok(ms(60_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse("1.5d"), Ok(ms(129_600_000)));
        assert_eq!(parse("2"), Ok(ms(2000)));
    }

    #[test]
    fn parses_fractions_exactly() {
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("0.1"), Ok(ms(100)));
        assert_eq!(parse(".25s"), Ok(ms(250)));
        assert_eq!(parse("1."), Ok(ms(1000)));
        assert_eq!(parse("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("1.5m"), Ok(ms(90_000)));
        assert_eq!(parse("0.000000001s"), Ok(Duration::from_nanos(1)));
        // Beyond nanosecond precision: truncated.
        assert_eq!(parse("1.0000000019s"), Ok(Duration::new(1, 1)));
        assert_eq!(
            parse("0.1234567890123456789012345s"),
            Ok(Duration::from_nanos(123_456_789))
        );
    }

    #[test]
    fn tolerates_blanks() {
        assert_eq!(parse(" 2s "), Ok(ms(2000)));
        assert_eq!(parse("1.5 s"), Ok(ms(1500)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("   "), Err(DurationError::Empty));
        assert_eq!(parse("abc"), Err(DurationError::BadNumber));
        assert_eq!(parse("s"), Err(DurationError::BadNumber));
        assert_eq!(parse("."), Err(DurationError::BadNumber));
        assert_eq!(parse("1.2.3s"), Err(DurationError::BadNumber));
        assert_eq!(parse("-1s"), Err(DurationError::BadNumber));
        assert_eq!(parse("+1s"), Err(DurationError::BadNumber));
        assert_eq!(parse("1e3"), Err(DurationError::BadUnit("e3".into())));
        assert_eq!(parse("5x"), Err(DurationError::BadUnit("x".into())));
        assert_eq!(parse("2S"), Err(DurationError::BadUnit("S".into())));
        assert_eq!(parse("2 s s"), Err(DurationError::BadUnit("s s".into())));
        assert_eq!(parse("10sec"), Err(DurationError::BadUnit("sec".into())));
    }

    #[test]
    fn rejects_zero_and_overflow() {
        assert_eq!(parse("0"), Err(DurationError::Zero));
        assert_eq!(parse("0.0ms"), Err(DurationError::Zero));
        // Below one nanosecond: truncates to zero.
        assert_eq!(parse("0.0000000001s"), Err(DurationError::Zero));
        assert_eq!(parse("99999999999999999999h"), Err(DurationError::TooLarge));
        assert_eq!(
            parse("9999999999999999999999999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(parse(&u64::MAX.to_string()), Err(DurationError::TooLarge));
        assert_eq!(parse("9223372036854775807"), Err(DurationError::TooLarge));
        assert_eq!(parse("5000000000000h"), Err(DurationError::TooLarge));
        // The maximum parses, in every unit; a nanosecond more does not.
        for max in ["7d", "168h", "10080m", "604800", "604800000ms"] {
            assert_eq!(parse(max), Ok(MAX), "{max}");
        }
        assert_eq!(parse("604800.000000001s"), Err(DurationError::TooLarge));
        assert_eq!(parse("7.1d"), Err(DurationError::TooLarge));
        assert!(DurationError::TooLarge.to_string().contains("at most 7d"));
    }

    #[test]
    fn errors_explain_the_syntax() {
        let text = DurationError::BadNumber.to_string();
        assert!(text.contains("500ms") && text.contains("1.5s"), "{text}");
        assert!(DurationError::BadUnit("x".into())
            .to_string()
            .contains("\"x\""));
    }

    #[test]
    fn formats_in_short_units() {
        assert_eq!(format(ms(2000)), "2s");
        assert_eq!(format(ms(1500)), "1.5s");
        assert_eq!(format(ms(500)), "500ms");
        assert_eq!(format(ms(60_000)), "1m");
        assert_eq!(format(ms(90_000)), "90s");
        assert_eq!(format(ms(3_600_000)), "1h");
        assert_eq!(format(ms(5_400_000)), "90m");
        assert_eq!(format(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format(Duration::new(1, 1)), "1.000000001s");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(MAX), "7d");
        assert_eq!(format(ms(86_400_000)), "1d");
        assert_eq!(format(ms(90_000_000)), "25h");
    }

    #[test]
    fn format_round_trips_through_parse() {
        for s in ["500ms", "2s", "1.5s", "1m", "0.25ms", "61s", "2h", "1.001s"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)), Ok(d), "{s}");
        }
    }

    #[test]
    fn after_saturates() {
        let now = Instant::now();
        assert_eq!(after(now, ms(5)), now + ms(5));
        assert!(after(now, Duration::MAX) > now + MAX);
        assert!(after(now, Duration::MAX) >= after(now, Duration::from_secs(u64::MAX / 2)));
    }

    #[test]
    fn formats_latency() {
        assert_eq!(format_latency(Duration::from_micros(3)), "<0.1ms");
        assert_eq!(format_latency(Duration::from_micros(300)), "0.3ms");
        assert_eq!(format_latency(Duration::from_micros(4_240)), "4.2ms");
        assert_eq!(format_latency(Duration::from_micros(9_960)), "10ms");
        assert_eq!(format_latency(ms(123)), "123ms");
        assert_eq!(format_latency(Duration::from_micros(999_600)), "1.00s");
        assert_eq!(format_latency(ms(1250)), "1.25s");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Anything at all: no panic, and an accepted value is within
            /// (0, MAX] and formats back to itself.
            #[test]
            fn any_input_is_safe(s in ".{0,40}") {
                if let Ok(d) = parse(&s) {
                    prop_assert!(d > Duration::ZERO && d <= MAX, "{s:?} -> {d:?}");
                    prop_assert_eq!(parse(&format(d)), Ok(d));
                }
            }

            /// Inputs of the right shape, including huge numbers.
            #[test]
            fn shaped_input_is_exact_or_refused(
                whole in "[0-9]{0,25}",
                fraction in proptest::option::of("[0-9]{0,25}"),
                unit in prop_oneof![Just(""), Just("ms"), Just("s"), Just("m"), Just("h"), Just("d")],
            ) {
                let s = match &fraction {
                    Some(f) => format!("{whole}.{f}{unit}"),
                    None => format!("{whole}{unit}"),
                };
                match parse(&s) {
                    Ok(d) => {
                        prop_assert!(d > Duration::ZERO && d <= MAX);
                        prop_assert_eq!(parse(&format(d)), Ok(d));
                    }
                    Err(DurationError::Zero | DurationError::TooLarge | DurationError::BadNumber | DurationError::Empty) => {}
                    Err(e) => prop_assert!(false, "{s:?}: {e:?}"),
                }
            }

            /// Every duration up to MAX, to the nanosecond, round-trips.
            #[test]
            fn format_round_trips(n in 1..=MAX.as_nanos() as u64) {
                let d = Duration::from_nanos(n);
                prop_assert_eq!(parse(&format(d)), Ok(d));
            }
        }
    }
}
