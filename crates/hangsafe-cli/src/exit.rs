//! The exit statuses of `hangsafe`: one table, from which the code takes
//! its constants and `--help` (and so the man pages) its "Exit status"
//! sections, so that the documentation cannot drift from the code. A
//! test checks README's exit-status table against [`CODES`] too.
//!
//! 0 to 3 say what the probes found; 64 and above follow sysexits(3) and
//! say why the command could not do its job. Not every code from 64 is a
//! usage error: only [`USAGE`] is.
//!
//! The Nagios/Icinga plugin mode (`check --format nagios`, listed as the
//! pseudo-command [`NAGIOS`]) has its own mapping, the plugin guidelines'
//! four statuses: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and nothing
//! else, so a usage error there is 3, not 64.

/// The pseudo-command of the Nagios/Icinga plugin mode in [`Code::commands`]:
/// it maps every outcome to the plugin guidelines' four statuses.
pub const NAGIOS: &str = "check --format nagios";

/// One exit status and what it means for the commands that use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// The status.
    pub code: u8,
    /// The subcommands that exit with it (in this meaning).
    pub commands: &'static [&'static str],
    /// What it means, for `--help` and the README.
    pub meaning: &'static str,
}

/// Every probed target is up.
pub const UP: Code = Code {
    code: 0,
    commands: &["check", "watch", "status"],
    meaning: "every target is up (status: or none is published yet)",
};
/// `bench` and `man` did their job.
pub const SUCCESS: Code = Code {
    code: 0,
    commands: &["bench", "man", "serve"],
    meaning: "done (bench: whatever the verdicts; serve: stopped by SIGTERM or SIGINT)",
};
/// A target is down (and none timed out).
pub const DOWN: Code = Code {
    code: 1,
    commands: &["check", "watch", "status"],
    meaning: "at least one target is down, none timed out",
};
/// A target timed out.
pub const TIMEOUT: Code = Code {
    code: 2,
    commands: &["check", "watch", "status"],
    meaning: "at least one target timed out (check, watch: or /proc/self/mountinfo \
              did not answer in time)",
};
/// A target could not be checked: its probe could not be started (a
/// local resource limit), or `watch` stopped before it had a result.
pub const ERROR: Code = Code {
    code: 3,
    commands: &["check", "watch", "status"],
    meaning: "at least one target could not be checked (state error: its probe \
              could not be started, e.g. the thread limit; watch: state pending, \
              no result yet when it stopped), none down or timed out",
};
/// `check --format nagios`: every target up and within the thresholds.
pub const NAGIOS_OK: Code = Code {
    code: 0,
    commands: &[NAGIOS],
    meaning: "OK: every target is up and within the thresholds",
};
/// `check --format nagios`: a threshold is crossed, nothing critical.
pub const NAGIOS_WARNING: Code = Code {
    code: 1,
    commands: &[NAGIOS],
    meaning: "WARNING: a --warning, --iwarning or --latency-warning threshold is \
              crossed, nothing is critical",
};
/// `check --format nagios`: a target is down or timed out, or a critical
/// threshold is crossed.
pub const NAGIOS_CRITICAL: Code = Code {
    code: 2,
    commands: &[NAGIOS],
    meaning: "CRITICAL: a target is down or timed out (or /proc/self/mountinfo \
              did not answer in time), or a --critical, --icritical or \
              --latency-critical threshold is crossed",
};
/// `check --format nagios`: something could not be checked, or the
/// command line is wrong (the plugin guidelines' UNKNOWN).
pub const NAGIOS_UNKNOWN: Code = Code {
    code: 3,
    commands: &[NAGIOS],
    meaning: "UNKNOWN: a usage error (any bad option or value, --help and \
              --version too, as the plugin guidelines ask), a target that could \
              not be checked, /proc/self/mountinfo unreadable or the probes not \
              run at all; nothing warning or critical",
};
/// Command-line usage error (sysexits' `EX_USAGE`).
pub const USAGE: Code = Code {
    code: 64,
    commands: &[
        "check",
        "watch",
        "status",
        "status --remove",
        "bench",
        "man",
        "serve",
    ],
    meaning: "usage error: unknown option, bad value (a duration above 7d, \
              an unknown target scheme, an invalid NAME, a bad --config file, ...)",
};
/// The published table is damaged (`EX_DATAERR`).
pub const DATAERR: Code = Code {
    code: 65,
    commands: &["status"],
    meaning: "the table is damaged or of another format",
};
/// The mount table cannot be read (`EX_NOINPUT`).
pub const NO_MOUNTINFO: Code = Code {
    code: 66,
    commands: &["check", "watch", "serve"],
    meaning: "/proc/self/mountinfo could not be read (serve: or did not answer in time)",
};
/// The table exists but this user may not open it (`EX_NOINPUT`).
pub const UNREADABLE: Code = Code {
    code: 66,
    commands: &["status"],
    meaning: "permission denied: the table belongs to another user (run as its owner)",
};
/// No table of that name (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: Code = Code {
    code: 69,
    commands: &["status"],
    meaning: "no table named NAME (no publisher ever ran, or it was removed)",
};
/// A measurement could not be made (`EX_SOFTWARE`).
pub const SOFTWARE: Code = Code {
    code: 70,
    commands: &["bench"],
    meaning: "a measurement could not be made (for example, a cancel never landed)",
};
/// The probes cannot run at all (`EX_OSERR`).
pub const OSERR: Code = Code {
    code: 71,
    commands: &["check", "watch", "serve"],
    meaning: "the probes could not be run at all (no runner set; watch: no \
              signalfd or eventfd; serve: or the listen address cannot be bound)",
};
/// `watch --publish` cannot create or take its table (`EX_CANTCREAT`).
pub const CANTCREAT_PUBLISH: Code = Code {
    code: 73,
    commands: &["watch"],
    meaning: "--publish: the table cannot be created, or another publisher holds NAME",
};
/// `man --dir` cannot create a page (`EX_CANTCREAT`).
pub const CANTCREAT_MAN: Code = Code {
    code: 73,
    commands: &["man"],
    meaning: "DIR or a page in it could not be created",
};
/// Output cannot be written (`EX_IOERR`).
pub const IOERR: Code = Code {
    code: 74,
    commands: &["bench", "man"],
    meaning: "standard output (bench: the report) could not be written",
};
/// The table's lock was not obtained in time (`EX_TEMPFAIL`).
pub const TEMPFAIL: Code = Code {
    code: 75,
    commands: &["status"],
    meaning: "the table's lock was not obtained within --timeout",
};

/// A table refused as untrusted (`EX_NOPERM`).
pub const NOPERM: Code = Code {
    code: 77,
    commands: &["watch", "status"],
    meaning: "refused: a file of NAME in /dev/shm is owned by another user (status: \
              and not --trust-owner) or writable by its group or others; see \
              status --remove",
};
/// `status --remove` removed the table.
pub const REMOVED: Code = Code {
    code: 0,
    commands: &["status --remove"],
    meaning: "removed (the paths removed are printed)",
};
/// `status --remove` found nothing to remove.
pub const NOTHING_TO_REMOVE: Code = Code {
    code: 69,
    commands: &["status --remove"],
    meaning: "nothing to remove",
};
/// `status --remove`: a system call failed (`EX_IOERR`).
pub const REMOVE_IOERR: Code = Code {
    code: 74,
    commands: &["status --remove"],
    meaning: "a system call failed (other than a refusal)",
};
/// `status --remove`: a live publisher holds the name (`EX_TEMPFAIL`).
pub const REMOVE_ALIVE: Code = Code {
    code: 75,
    commands: &["status --remove"],
    meaning: "a live publisher holds NAME (stop it, or --force)",
};
/// `status --remove`: a file is not ours (`EX_NOPERM`).
pub const REMOVE_REFUSED: Code = Code {
    code: 77,
    commands: &["status --remove"],
    meaning: "a file is not ours (another owner, writable by others, a symlink) and \
              not --force, or the system refused to remove it",
};

/// Every exit status, in order.
pub const CODES: &[Code] = &[
    UP,
    SUCCESS,
    REMOVED,
    NAGIOS_OK,
    DOWN,
    NAGIOS_WARNING,
    TIMEOUT,
    NAGIOS_CRITICAL,
    ERROR,
    NAGIOS_UNKNOWN,
    USAGE,
    DATAERR,
    NO_MOUNTINFO,
    UNREADABLE,
    UNAVAILABLE,
    NOTHING_TO_REMOVE,
    SOFTWARE,
    OSERR,
    CANTCREAT_PUBLISH,
    CANTCREAT_MAN,
    IOERR,
    REMOVE_IOERR,
    TEMPFAIL,
    REMOVE_ALIVE,
    NOPERM,
    REMOVE_REFUSED,
];

/// The exit statuses of subcommand `command`, in order.
pub fn for_command(command: &str) -> impl Iterator<Item = &'static Code> + '_ {
    CODES.iter().filter(move |c| c.commands.contains(&command))
}

/// Width of the help text the sections are wrapped to.
const WIDTH: usize = 76;

/// The "Exit status:" section of `command`'s help: one entry per code,
/// the meaning wrapped and indented under it.
pub fn help_section(command: &str) -> String {
    let mut out = String::from("Exit status:\n");
    for c in for_command(command) {
        entry(&mut out, c.code, c.meaning);
    }
    out.pop();
    out
}

/// The "Exit status:" section of the main help: every code and the
/// subcommands it applies to.
pub fn main_help_section() -> String {
    let mut out = String::from("Exit status:\n");
    for c in CODES {
        entry(
            &mut out,
            c.code,
            &format!("{}: {}", c.commands.join(", "), c.meaning),
        );
    }
    out.push_str("\nEach subcommand's --help lists the codes it uses.");
    out
}

/// Appends `  CODE  text` to `out`, wrapped at [`WIDTH`] with the
/// continuation lines indented under the text.
fn entry(out: &mut String, code: u8, text: &str) {
    const INDENT: usize = 6;
    let mut line = format!("  {code:<3} ");
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(INDENT);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// `help_section(command)`, a blank line, then `rest` (the remaining
/// sections of a subcommand's help footer).
pub fn after_help(command: &str, rest: &str) -> String {
    format!("{}\n\n{rest}", help_section(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_order_and_unique_per_command() {
        assert!(CODES.windows(2).all(|w| w[0].code <= w[1].code));
        for cmd in [
            "check",
            "watch",
            "status",
            "status --remove",
            "bench",
            "man",
            "serve",
        ] {
            let codes: Vec<u8> = for_command(cmd).map(|c| c.code).collect();
            let mut dedup = codes.clone();
            dedup.dedup();
            assert_eq!(codes, dedup, "{cmd}: a code with two meanings");
            assert!(codes.contains(&USAGE.code), "{cmd}");
        }
        let nagios: Vec<u8> = for_command(NAGIOS).map(|c| c.code).collect();
        assert_eq!(nagios, [0, 1, 2, 3], "the plugin guidelines' four only");
    }

    #[test]
    fn sections_list_each_code_once_and_wrap() {
        let s = help_section("check");
        assert!(
            s.starts_with("Exit status:\n  0   every target is up"),
            "{s}"
        );
        let codes: Vec<&str> = s
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("      "))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(codes, ["0", "1", "2", "3", "64", "66", "71"]);
        assert!(s.lines().all(|l| l.chars().count() <= WIDTH), "{s}");
        // Continuation lines never start with a number (they would read
        // as another code).
        assert!(s.lines().filter(|l| l.starts_with("      ")).all(|l| l
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u8>()
            .is_err()));
        assert!(main_help_section().contains("  73  man: DIR"));
    }
}
