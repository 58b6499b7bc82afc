//! Progress for `up` and `down`: a bar on a terminal, one plain line per step
//! otherwise (CI logs).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{ProviderError, Reporter, Step, StepResult};

pub struct StepReporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Mutex<Vec<(String, Instant)>>,
}

impl StepReporter {
    pub fn new(tty: bool, quiet: bool) -> Self {
        let bar = (tty && !quiet).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed}] {bar:30} {pos}/{len} {wide_msg}",
                )
                .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        StepReporter {
            bar,
            quiet,
            started: Mutex::new(Vec::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    fn key(step: &Step) -> String {
        format!("{} {}", step.op.verb(), step.address)
    }
}

impl Reporter for StepReporter {
    fn start(&self, total: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
    }

    fn step_started(&self, step: &Step) {
        let key = Self::key(step);
        if let Some(b) = &self.bar {
            b.set_message(key.clone());
        }
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, Instant::now()));
    }

    fn step_finished(&self, step: &Step, result: &StepResult) {
        let key = Self::key(step);
        let elapsed = {
            let mut s = self.started.lock().unwrap_or_else(|e| e.into_inner());
            let pos = s.iter().position(|(k, _)| *k == key);
            pos.map(|p| s.remove(p).1.elapsed()).unwrap_or_default()
        };
        let t = format!("{:.1}s", elapsed.as_secs_f64());
        let text = match result {
            StepResult::Done {
                physical_id: Some(id),
            } => format!("{key}: done ({id}) {t}"),
            StepResult::Done { physical_id: None } => format!("{key}: done {t}"),
            StepResult::Found { physical_id } => {
                format!("{key}: already exists ({physical_id}), kept")
            }
            StepResult::Blocked => format!("{key}: still in use, will retry"),
            StepResult::Skipped => format!("{key}: skipped"),
            StepResult::Failed(e) => format!("{key}: failed: {}", e.detail()),
        };
        self.line(text);
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn retrying(&self, step: &Step, error: &ProviderError, after: Duration) {
        tracing::debug!(step = %Self::key(step), error = %error, "retrying");
        self.line(format!(
            "{}: {} (retrying in {:.1}s)",
            Self::key(step),
            error.detail(),
            after.as_secs_f64()
        ));
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A rollout's progress: one bar per service on a terminal (updated and
/// available of desired), one line per change otherwise.
pub struct RolloutBars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<Vec<(String, ProgressBar)>>,
    quiet: bool,
}

impl RolloutBars {
    pub fn new(tty: bool, quiet: bool) -> Self {
        RolloutBars {
            multi: (tty && !quiet).then(indicatif::MultiProgress::new),
            bars: Mutex::new(Vec::new()),
            quiet,
        }
    }

    /// A service's progress: `updated`, `available` of `desired`, or done
    /// (`Ok(true)`), or failed with a reason.
    pub fn report(&self, service: &str, state: &crate::rollout::Progress) {
        use crate::rollout::Progress;
        let Some(multi) = &self.multi else {
            if !self.quiet {
                eprintln!(
                    "{service}: {}",
                    match state {
                        Progress::Waiting {
                            updated,
                            available,
                            desired,
                        } => format!("{updated} updated, {available} available of {desired}"),
                        Progress::Complete => "complete".into(),
                        Progress::Failed { reason, .. } => reason.clone(),
                    }
                );
            }
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = match bars.iter().find(|(s, _)| s == service) {
            Some((_, b)) => b.clone(),
            None => {
                let b = multi.add(ProgressBar::new(1));
                b.set_style(
                    ProgressStyle::with_template("{prefix:<20} {bar:30} {pos}/{len} {wide_msg}")
                        .expect("valid template"),
                );
                b.set_prefix(service.to_string());
                bars.push((service.to_string(), b.clone()));
                b
            }
        };
        match state {
            Progress::Waiting {
                updated,
                available,
                desired,
            } => {
                bar.set_length((*desired).max(0) as u64);
                bar.set_position((*available).max(0) as u64);
                bar.set_message(format!("{updated} updated, {available} available"));
            }
            Progress::Complete => bar.finish_with_message("complete"),
            Progress::Failed { reason, .. } => bar.abandon_with_message(reason.clone()),
        }
    }
}
