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
