//! Terminal output: progress spinners (indicatif, only on a terminal), warnings,
//! errors, and the exit code of a command whose function failed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Ends a command with this exit code and no further message (the command has
/// printed what happened, e.g. a function error).
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn error_prefix() -> &'static str {
    if color() {
        "\x1b[31m✖\x1b[0m"
    } else {
        "✖"
    }
}

/// Prints a warning to stderr.
pub(crate) fn warn(message: &str) {
    if color() {
        eprintln!("\x1b[33mWarning:\x1b[0m {message}");
    } else {
        eprintln!("Warning: {message}");
    }
}

/// Says on stderr that a Serverless Framework option was accepted but means nothing
/// here (`--{flag}`), and why.
pub(crate) fn no_effect(flag: &str, why: &str) {
    eprintln!("note: --{flag} has no effect on Stratus ({why})");
}

/// A step indicator: a spinner on a terminal; with `verbose` (or without a
/// terminal) each step is printed as a line instead.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
}

impl Progress {
    pub(crate) fn new(verbose: bool, first: &str) -> Self {
        let bar = (!verbose && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(first.to_string());
            bar
        });
        let p = Self { bar, verbose };
        if p.bar.is_none() && verbose {
            eprintln!("{first}");
        }
        p
    }

    /// Reports a step.
    pub(crate) fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None if self.verbose => eprintln!("  {message}"),
            None => {}
        }
    }

    /// Reports a warning: printed whether or not steps are (above the spinner).
    pub(crate) fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| warn(message)),
            None => warn(message),
        }
    }

    /// Reports a note: printed whether or not steps are (above the spinner).
    pub(crate) fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("note: {message}")),
            None => eprintln!("note: {message}"),
        }
    }

    /// Removes the spinner.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
