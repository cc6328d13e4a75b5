//! Turns engine [`Event`]s into indicatif bars on a terminal, or log lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lab_core::Event;

/// Shows progress of `up` and `down`.
pub struct Bars {
    multi: MultiProgress,
    /// Whether bars are drawn; otherwise events become `info` log lines.
    live: bool,
    overall: Mutex<Option<ProgressBar>>,
    /// `up` or `down`, shown on the overall bar between lab-wide steps.
    operation: Mutex<&'static str>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// `subject: summary` of every finished subject, so a half-done run can say what it
    /// did after the bars are gone.
    done: Mutex<Vec<String>>,
}

impl Bars {
    /// Bars on stderr when it is a terminal, log lines otherwise.
    pub fn new() -> Self {
        let live = std::io::stderr().is_terminal();
        let target = if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            live,
            overall: Mutex::new(None),
            operation: Mutex::new(""),
            bars: Mutex::new(HashMap::new()),
            done: Mutex::new(Vec::new()),
        }
    }

    fn spinner(&self, subject: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {prefix:<12} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(subject.to_owned());
        bar.set_message("queued");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Handles one event (the engine's callback).
    pub fn event(&self, e: Event) {
        if let Event::Done { subject, summary } = &e {
            self.done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{subject}: {summary}"));
        }
        if !self.live {
            log_event(&e);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Begin {
                operation,
                subjects,
            } => {
                let total = subjects.len() as u64;
                let overall = self.multi.add(ProgressBar::new(total));
                overall.set_style(
                    ProgressStyle::with_template("{msg:>4} [{bar:30}] {pos}/{len}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                overall.set_message(operation);
                *self.operation.lock().unwrap_or_else(|p| p.into_inner()) = operation;
                *self.overall.lock().unwrap_or_else(|p| p.into_inner()) = Some(overall);
                for s in subjects {
                    let bar = self.spinner(&s);
                    bars.insert(s, bar);
                }
            }
            Event::Step { subject, step } => {
                if let Some(b) = bars.get(&subject) {
                    b.set_message(step.to_string());
                }
                // A lab-wide step (fence, pool) is over once guests move again.
                if let Some(o) = &*self.overall.lock().unwrap_or_else(|p| p.into_inner()) {
                    o.set_message(*self.operation.lock().unwrap_or_else(|p| p.into_inner()));
                }
            }
            Event::Done { subject, summary } => {
                if let Some(b) = bars.get(&subject) {
                    b.finish_with_message(format!("done: {summary}"));
                }
                self.tick();
            }
            Event::Failed { subject, message } => {
                if let Some(b) = bars.get(&subject) {
                    b.abandon_with_message(format!("FAILED: {message}"));
                }
                self.tick();
            }
            Event::Lab { step } => {
                if let Some(o) = &*self.overall.lock().unwrap_or_else(|p| p.into_inner()) {
                    o.set_message(step.to_string());
                }
            }
            _ => {}
        }
    }

    fn tick(&self) {
        if let Some(o) = &*self.overall.lock().unwrap_or_else(|p| p.into_inner()) {
            o.inc(1);
        }
    }

    /// Removes the bars before the result table is printed.
    pub fn finish(&self) {
        if let Some(o) = self
            .overall
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            o.finish_and_clear();
        }
        for (_, b) in self.bars.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            if !b.is_finished() {
                b.abandon();
            }
        }
        let _ = self.multi.clear();
    }

    /// What finished so far (`subject: summary`), in the order it finished.
    pub fn done(&self) -> Vec<String> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The lines a failed `up`/`down` prints before its error: what was `verb` before it
/// stopped, or that nothing was.
pub fn half_done(verb: &str, done: &[String]) -> String {
    if done.is_empty() {
        return format!("nothing was {verb}\n");
    }
    let mut out = format!("{verb} before the failure:\n");
    for d in done {
        out.push_str(&format!("  {d}\n"));
    }
    out
}

fn log_event(e: &Event) {
    match e {
        Event::Begin {
            operation,
            subjects,
        } => tracing::info!("{operation}: {} guests", subjects.len()),
        Event::Step { subject, step } => tracing::info!("{subject}: {step}"),
        Event::Done { subject, summary } => tracing::info!("{subject}: done ({summary})"),
        Event::Failed { subject, message } => tracing::warn!("{subject}: failed: {message}"),
        Event::Lab { step } => tracing::info!("lab: {step}"),
        other => tracing::info!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_done_run_lists_what_finished() {
        let bars = Bars::new();
        bars.event(Event::Step {
            subject: "exam-01".into(),
            step: lab_core::Step::Destroy,
        });
        bars.event(Event::Done {
            subject: "exam-02".into(),
            summary: "vm 5001 destroyed".into(),
        });
        bars.event(Event::Failed {
            subject: "exam-01".into(),
            message: "locked".into(),
        });
        bars.finish();
        assert_eq!(bars.done(), ["exam-02: vm 5001 destroyed"]);
        assert_eq!(
            half_done("destroyed", &bars.done()),
            "destroyed before the failure:\n  exam-02: vm 5001 destroyed\n"
        );
        assert_eq!(half_done("destroyed", &[]), "nothing was destroyed\n");
    }
}
