//! Colour: when to colour (`--color`, `NO_COLOR`, a terminal) and the
//! colour of each state.

use crate::report::State;
use std::io::{self, IsTerminal as _};

/// When to colour the table (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset
    /// or empty.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour: `always`/`never` as told; `auto` only when standard
/// output is a terminal and `NO_COLOR` is unset or empty (no-color.org).
pub(crate) fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            !no_color && io::stdout().is_terminal()
        }
    }
}

/// The SGR colour of a state: green up, red down, bold yellow timeout,
/// magenta error, cyan pending.
pub(crate) fn state_sgr(state: State) -> &'static str {
    match state {
        State::Up => "32",
        State::Down => "31",
        State::Timeout => "1;33",
        State::Error => "35",
        State::Pending => "36",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_win() {
        assert!(use_color(ColorChoice::Always));
        assert!(!use_color(ColorChoice::Never));
    }
}
