//! How long scopectl waits between retries and polls. The defaults suit AWS;
//! an operator (or a test against a local emulator) can tune them through the
//! environment, read once at the edge (`commands::run`) and installed here.
//!
//! - `SCOPECTL_RETRY_MIN_DELAY` (default `100ms`): the first retry or poll delay;
//! - `SCOPECTL_RETRY_MAX_DELAY` (default `5s`): where the doubling stops;
//! - `SCOPECTL_TEARDOWN_PAUSE` (default `2s`): between teardown waves that met
//!   a resource still in use (AWS lets go of ELB interfaces and terminated
//!   instances a little after it says they are gone).

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::UserError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub teardown_pause: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            teardown_pause: Duration::from_secs(2),
        }
    }
}

static INSTALLED: OnceLock<Timing> = OnceLock::new();

impl Timing {
    /// The defaults, overridden by whichever variables `get` finds.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Timing, UserError> {
        let mut t = Timing::default();
        for (name, slot) in [
            ("SCOPECTL_RETRY_MIN_DELAY", &mut t.min_delay),
            ("SCOPECTL_RETRY_MAX_DELAY", &mut t.max_delay),
            ("SCOPECTL_TEARDOWN_PAUSE", &mut t.teardown_pause),
        ] {
            if let Some(v) = get(name) {
                *slot = humantime::parse_duration(v.trim()).map_err(|e| {
                    UserError::usage(
                        format!("{name}={v:?} is not a duration: {e}"),
                        "use a duration such as 250ms, 5s or 1m, or unset it",
                    )
                })?;
            }
        }
        if t.min_delay > t.max_delay {
            return Err(UserError::usage(
                format!(
                    "SCOPECTL_RETRY_MIN_DELAY ({}) is longer than SCOPECTL_RETRY_MAX_DELAY ({})",
                    humantime::format_duration(t.min_delay),
                    humantime::format_duration(t.max_delay)
                ),
                "make the minimum delay no longer than the maximum",
            ));
        }
        Ok(t)
    }

    pub fn from_env() -> Result<Timing, UserError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Makes `self` what `current` returns for the rest of the process. The
    /// first call wins: one process has one timing.
    pub fn install(self) {
        let _ = INSTALLED.set(self);
    }

    /// The installed timing, or the defaults.
    pub fn current() -> Timing {
        INSTALLED.get().copied().unwrap_or_default()
    }

    /// The next poll delay after `d`: doubled, capped at `max_delay`.
    pub fn next(&self, d: Duration) -> Duration {
        (d * 2).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_suit_aws_and_variables_override_them() {
        assert_eq!(Timing::from_vars(vars(&[])).unwrap(), Timing::default());
        let t = Timing::from_vars(vars(&[
            ("SCOPECTL_RETRY_MIN_DELAY", "10ms"),
            ("SCOPECTL_RETRY_MAX_DELAY", "200ms"),
            ("SCOPECTL_TEARDOWN_PAUSE", " 50ms "),
        ]))
        .unwrap();
        assert_eq!(t.min_delay, Duration::from_millis(10));
        assert_eq!(t.max_delay, Duration::from_millis(200));
        assert_eq!(t.teardown_pause, Duration::from_millis(50));
        assert_eq!(t.next(Duration::from_millis(150)), t.max_delay);
    }

    #[test]
    fn a_bad_value_is_a_usage_error_naming_the_variable() {
        let e = Timing::from_vars(vars(&[("SCOPECTL_TEARDOWN_PAUSE", "soon")])).unwrap_err();
        assert!(e.to_string().contains("SCOPECTL_TEARDOWN_PAUSE"), "{e}");
        let e = Timing::from_vars(vars(&[("SCOPECTL_RETRY_MIN_DELAY", "10s")])).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}
