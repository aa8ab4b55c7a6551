//! Environment knobs (`HANGSAFE_*`) that size tests and benchmarks.
//!
//! A knob that is set but does not parse is a loud error (a panic naming
//! the variable), never a silent fallback to the default.

use std::str::FromStr;

/// The environment variable that says the tests run under an emulator
/// (qemu-user, the aarch64 CI run), where everything is about ten times
/// slower.
pub const UNDER_EMULATION: &str = "HANGSAFE_UNDER_EMULATION";

/// Whether [`UNDER_EMULATION`] is set.
pub fn under_emulation() -> bool {
    std::env::var_os(UNDER_EMULATION).is_some()
}

/// The value of `name` parsed as a `T`, or `default` if it is unset.
///
/// # Panics
///
/// If `name` is set to something that does not parse as a `T`.
pub fn or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?}: not a valid value")),
        Err(_) => default,
    }
}

/// A count: `name` if set, else `default`, divided by ten (at least 1)
/// under emulation.
///
/// # Panics
///
/// If `name` is set to something that is not a `u64`.
pub fn count(name: &str, default: u64) -> u64 {
    let default = if under_emulation() {
        (default / 10).max(1)
    } else {
        default
    };
    or(name, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_gives_the_default() {
        assert_eq!(or("TESTKIT_SURELY_UNSET_VARIABLE", 7u32), 7);
    }

    #[test]
    #[should_panic(expected = "not a valid value")]
    fn garbage_is_loud() {
        // PATH is always set and never a number.
        let _: u64 = or("PATH", 1);
    }
}
