//! Everything the user sees: the plan view, progress, JSON. Only this module
//! knows indicatif; the engine reports through `apply::Reporter`.

mod plan_view;
mod progress;

pub use plan_view::{render_plan, render_summary};
pub use progress::{RolloutBars, StepReporter};

use std::io::{IsTerminal, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Human,
    Json,
}

/// Chooses streams: data to stdout, logs and progress to stderr.
#[derive(Clone, Debug)]
pub struct Printer {
    pub output: Output,
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
}

impl Printer {
    /// Data for stdout (the plan, status, JSON).
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    pub fn json<T: serde::Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("plain data serializes");
        self.data(&format!("{text}\n"));
    }

    /// A status line for stderr, hidden by `-q`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    pub fn stderr_is_tty(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
