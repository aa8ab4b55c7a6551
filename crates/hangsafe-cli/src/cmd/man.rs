//! `hangsafe man`: the man pages, generated from the command line
//! definition itself (clap_mangen), so they can never drift from
//! `--help`.

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{bold, roman, Roff};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit;

/// One-line description of `man` (`-h`, command list).
const MAN_ABOUT: &str = "Write the man pages (hangsafe.1 and one per subcommand)";

/// Description of `man` (`--help`).
const MAN_LONG_ABOUT: &str = "\
Write the man pages, generated from the same definition as --help.

With --dir DIR, writes hangsafe.1 and one page per subcommand
(hangsafe-check.1, hangsafe-watch.1, ...) into DIR, creating it if needed,
and lists the files written on standard output. Without --dir, prints
hangsafe.1 to standard output.";

/// Footer of `man`'s help after the exit status (generated from
/// [`crate::exit`]): examples.
const MAN_EXAMPLES: &str = "\
Examples:
  hangsafe man | man -l -
  hangsafe man --dir /usr/local/share/man/man1";

/// Options of `hangsafe man`.
#[derive(Debug, clap::Args)]
#[command(about = MAN_ABOUT, long_about = MAN_LONG_ABOUT, after_help = exit::after_help("man", MAN_EXAMPLES))]
pub(crate) struct ManArgs {
    /// Write every page into DIR (created if missing) instead of printing hangsafe.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs `hangsafe man`.
pub(crate) fn run(args: ManArgs) -> ExitCode {
    match args.dir {
        Some(dir) => match write_pages(&dir) {
            Ok(paths) => {
                let mut out = io::stdout().lock();
                for p in paths {
                    // The pages are written; a closed stdout changes nothing.
                    let _ = writeln!(out, "{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hangsafe man: {e}");
                ExitCode::from(exit::CANTCREAT_MAN.code)
            }
        },
        None => {
            let (_, page) = page(&command(), false);
            let mut out = io::stdout().lock();
            match out.write_all(&page).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hangsafe man: cannot write to standard output: {e}");
                    ExitCode::from(exit::IOERR.code)
                }
            }
        }
    }
}

/// The full command tree, built (subcommands named `hangsafe-check`, ...)
/// and without clap's implicit `help` subcommand.
fn command() -> clap::Command {
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page, with its file name: the main command's, then one per
/// visible subcommand.
fn pages() -> Vec<(String, Vec<u8>)> {
    let cmd = command();
    let mut out = vec![page(&cmd, false)];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.push(page(sub, true));
    }
    out
}

/// The roff preamble every rendered chunk starts with (it defines the
/// apostrophe string); a page has it once, at the top.
fn preamble() -> String {
    Roff::new().render()
}

/// Renders one chunk (a `Man` section or a [`Roff`]) without the preamble.
fn chunk(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut buf = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = render(&mut buf);
    let s = String::from_utf8_lossy(&buf).into_owned();
    match s.strip_prefix(&preamble()) {
        Some(rest) => rest.to_owned(),
        None => s,
    }
}

/// The page of `cmd` and its file name. clap_mangen renders the title,
/// name, synopsis, options and subcommands; the description and the
/// sections of the help's footer ("Exit status:", "Examples:", ...) are
/// rendered here so that their indented tables stay tables.
fn page(cmd: &clap::Command, is_sub: bool) -> (String, Vec<u8>) {
    let man = Man::new(cmd.clone());
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    // Written here rather than by `render_title`, which leaves the empty
    // date unquoted and so shifts the source and manual into the wrong
    // fields.
    let mut s = preamble();
    s += &format!(
        ".TH {name} 1 \"\" \"hangsafe {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    );
    s += &chunk(|w| man.render_name_section(w));
    s += &chunk(|w| man.render_synopsis_section(w));
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    if let Some(text) = cmd.get_long_about().or(cmd.get_about()) {
        paragraphs(&mut roff, &text.to_string());
    }
    s += &chunk(|w| roff.to_writer(w));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        s += &chunk(|w| man.render_options_section(w));
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        s += &chunk(|w| man.render_subcommands_section(w));
    }
    let mut roff = Roff::new();
    if let Some(text) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        footer_sections(&mut roff, &text.to_string());
    }
    if is_sub {
        roff.control("SH", ["SEE ALSO"]);
        roff.text([bold("hangsafe"), roman("(1)")]);
    }
    s += &chunk(|w| roff.to_writer(w));
    if cmd.get_version().is_some() {
        s += &chunk(|w| man.render_version_section(w));
    }
    (man.get_filename(), s.into_bytes())
}

/// Help text as roff paragraphs: a paragraph with an indented line (a
/// table, an example) is kept as it is (`.nf`); any other is filled text.
fn paragraphs(roff: &mut Roff, text: &str) {
    let mut first = true;
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        if !first {
            roff.control("PP", []);
        }
        first = false;
        let lines: Vec<&str> = para.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.iter().any(|l| l.starts_with(' ')) {
            roff.control("nf", []);
            for l in lines {
                roff.text([roman(l)]);
            }
            roff.control("fi", []);
        } else {
            for l in lines {
                roff.text([roman(l.trim())]);
            }
        }
    }
}

/// A help footer as man sections: each paragraph that starts with
/// `Heading:` becomes section `HEADING` (text on the heading's own line,
/// as in "Exit status: see ...", goes first in the section); other
/// paragraphs go under NOTES.
fn footer_sections(roff: &mut Roff, text: &str) {
    for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let (first, rest) = para.split_once('\n').unwrap_or((para, ""));
        match section_heading(first) {
            Some((heading, tail)) => {
                roff.control("SH", [heading.to_uppercase().as_str()]);
                let body = if tail.is_empty() {
                    rest.to_owned()
                } else {
                    format!("{tail}\n{rest}")
                };
                paragraphs(roff, &body);
            }
            None => {
                roff.control("SH", ["NOTES"]);
                paragraphs(roff, para);
            }
        }
    }
}

/// `("Exit status", "see ...")` from `Exit status: see ...`: an
/// unindented line starting with at most three words and a colon.
fn section_heading(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(' ') {
        return None;
    }
    let (head, tail) = line.split_once(':')?;
    let words = head.split_whitespace().count();
    let plain = head.chars().all(|c| c.is_alphanumeric() || c == ' ');
    (words > 0 && words <= 3 && plain).then(|| (head.trim(), tail.trim()))
}

/// Writes every page into `dir`, creating it if needed; returns the paths
/// written. The error names the path that failed.
fn write_pages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (name, page) in pages() {
        let path = dir.join(name);
        std::fs::write(&path, &page)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_valid() {
        crate::Cli::command().debug_assert();
    }

    /// Every subcommand and every argument of the tree has help text, so
    /// `--help` and the man pages describe all of them.
    #[test]
    fn everything_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path} argument {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{name} (about)"));
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), "hangsafe", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    /// Every subcommand's help has an "Exit status" section.
    #[test]
    fn every_subcommand_documents_its_exit_status() {
        let cmd = command();
        let missing: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| {
                !s.get_after_help()
                    .or(s.get_after_long_help())
                    .is_some_and(|h| h.to_string().contains("Exit status"))
            })
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(missing.is_empty(), "no Exit status section: {missing:?}");
    }

    #[test]
    fn one_page_per_subcommand() {
        let names: Vec<_> = pages().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "hangsafe.1");
        for sub in command().get_subcommands() {
            let want = format!("hangsafe-{}.1", sub.get_name());
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n == "hangsafe-help.1"));
    }

    #[test]
    fn pages_render_every_section_once() {
        let pre = preamble();
        assert!(pre.starts_with(".ie \\n(.g .ds Aq"), "{pre}");
        for (name, page) in pages() {
            let page = String::from_utf8(page).unwrap();
            assert!(page.starts_with(&pre), "{name}");
            assert_eq!(page.matches(&pre).count(), 1, "{name}: preamble repeated");
            let title = name.trim_end_matches(".1");
            let th = format!(
                ".TH {title} 1 \"\" \"hangsafe {}\" ",
                env!("CARGO_PKG_VERSION")
            );
            assert!(page.contains(&th), "{name}: no {th}");
            for sh in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
                assert_eq!(page.matches(sh).count(), 1, "{name}: {sh}");
            }
            assert!(page.contains("\\-\\-help"), "{name}");
            assert!(page.contains(".SH \"EXIT STATUS\"\n"), "{name}");
        }
    }

    fn render(f: impl FnOnce(&mut Roff)) -> String {
        let mut r = Roff::new();
        f(&mut r);
        r.to_roff()
    }

    #[test]
    fn paragraphs_keep_tables() {
        let text = "Prose that\nwraps.\n\nTable:\n  0   fine\n  .1  dot\n";
        assert_eq!(
            render(|r| paragraphs(r, text)),
            "Prose that\nwraps.\n.PP\n.nf\nTable:\n  0   fine\n  .1  dot\n.fi\n"
        );
    }

    #[test]
    fn footer_becomes_sections() {
        let text = "Exit status:\n  0   ok\n  64  usage\n\nExit status: see --help.\n\n\
                    Examples:\n  hangsafe check -t 1s\n\nJust a note.";
        assert_eq!(
            render(|r| footer_sections(r, text)),
            ".SH \"EXIT STATUS\"\n.nf\n  0   ok\n  64  usage\n.fi\n\
             .SH \"EXIT STATUS\"\nsee \\-\\-help.\n\
             .SH EXAMPLES\n.nf\n  hangsafe check \\-t 1s\n.fi\n\
             .SH NOTES\nJust a note.\n"
        );
        assert_eq!(
            section_heading("Exit status: x"),
            Some(("Exit status", "x"))
        );
        assert_eq!(section_heading("  0: x"), None);
        assert_eq!(section_heading("A sentence with many words: x"), None);
        assert_eq!(section_heading("e.g.: x"), None);
    }
}
