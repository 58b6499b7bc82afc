use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the config file, 1-based, with the line's text for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The source line and the caret width under it.
    pub snippet: Option<(String, usize)>,
}

impl Location {
    pub fn from_span(path: &Path, text: &str, span: Option<std::ops::Range<usize>>) -> Self {
        let Some(span) = span else {
            return Location {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                snippet: None,
            };
        };
        let start = span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = text[line_start..start].chars().count() + 1;
        let line_end = text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(text.len());
        let src_line = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let width = text[start..span.end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        Location {
            path: path.to_path_buf(),
            line,
            column,
            snippet: Some((src_line, width)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Invalid {
        at: Location,
        message: String,
        hint: Option<String>,
    },
    #[error("{at}: env `{env}` is not defined")]
    UnknownEnv {
        env: String,
        at: Location,
        known: String,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { path, .. } => Some(format!(
                "pass the file with -c/--config or SCOPECTL_CONFIG; looked for {}",
                path.display()
            )),
            ConfigError::Invalid { hint, .. } => hint.clone(),
            ConfigError::UnknownEnv { known, env, .. } => Some(if known.is_empty() {
                format!("add an [env.{env}] table to the config")
            } else {
                format!("defined envs: {known}; or add an [env.{env}] table")
            }),
        }
    }

    /// The source line with a caret under the offending span, rustc style.
    pub fn snippet(&self) -> Option<String> {
        let ConfigError::Invalid { at, .. } = self else {
            return None;
        };
        let (line, width) = at.snippet.as_ref()?;
        let n = at.line.to_string();
        let pad = " ".repeat(n.len());
        Some(format!(
            "{pad} |\n{n} | {line}\n{pad} | {}{}",
            " ".repeat(at.column - 1),
            "^".repeat(*width)
        ))
    }
}
