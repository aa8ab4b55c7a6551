//! `hs_version()` and the version macros of `hangsafe.h`.

use std::ffi::c_char;

/// The crate version as a NUL-terminated string with static storage.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library's version, `"MAJOR.MINOR.PATCH"`, as a static
/// NUL-terminated string that the caller must not free.
///
/// Compare it with the `HANGSAFE_VERSION_*` macros the program was compiled
/// with to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn hs_version() -> *const c_char {
    crate::barrier::run("hs_version", VERSION.as_ptr().cast(), || {
        VERSION.as_ptr().cast()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_is_the_package_version() {
        // SAFETY: hs_version returns a pointer to a static NUL-terminated
        // string.
        let v = unsafe { CStr::from_ptr(hs_version()) };
        assert_eq!(v.to_str(), Ok(env!("CARGO_PKG_VERSION")));
    }

    /// The macros in include/hangsafe.h must match Cargo.toml's version.
    #[test]
    fn header_macros_match_the_package_version() {
        let header = include_str!("../include/hangsafe.h");
        let macro_value = |name: &str| -> String {
            let line = header
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} missing from hangsafe.h"));
            line.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            macro_value("HANGSAFE_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            macro_value("HANGSAFE_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            macro_value("HANGSAFE_VERSION_PATCH"),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }
}
