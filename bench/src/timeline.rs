//! Where the time of a lab run goes, from the engine's progress events: per step, how
//! long students spent in it (mean) and the wall span from its first start to its last
//! end. Time between `Begin` and a student's first step counts as `queued`; lab-wide
//! steps (pool, fence) last until the next event.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use lab_core::Event;
use serde::Serialize;

/// The name of the time before a student's first step.
pub const QUEUED: &str = "queued";

#[derive(Debug, Default)]
struct Inner {
    /// Per subject: the step it is in and since when (seconds since the start).
    current: BTreeMap<String, (String, f64)>,
    /// A lab-wide step in progress and since when.
    lab: Option<(String, f64)>,
    /// Per step: (summed seconds, number of intervals, first start, last end).
    spans: BTreeMap<String, (f64, u32, f64, f64)>,
    failed: u32,
    done: u32,
}

impl Inner {
    fn close(&mut self, step: String, from: f64, to: f64) {
        let e = self.spans.entry(step).or_insert((0.0, 0, f64::MAX, 0.0));
        e.0 += to - from;
        e.1 += 1;
        e.2 = e.2.min(from);
        e.3 = e.3.max(to);
    }

    fn end_lab_step(&mut self, now: f64) {
        if let Some((step, since)) = self.lab.take() {
            self.close(format!("lab: {step}"), since, now);
        }
    }
}

/// Records events with their times; [`Timeline::summary`] sums them up.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    inner: Mutex<Inner>,
}

/// One step's share of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTime {
    /// The step as the engine names it (`cloning`, `lab: fencing`, `queued`, …).
    pub step: String,
    /// Intervals recorded (students that went through it).
    pub count: u32,
    /// Mean seconds per interval.
    pub mean_s: f64,
    /// Seconds from the first start to the last end.
    pub span_s: f64,
    /// First start, seconds after the run began.
    pub first_s: f64,
}

/// The summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Steps in order of first start.
    pub steps: Vec<StepTime>,
    /// Subjects reported done.
    pub done: u32,
    /// Subjects reported failed.
    pub failed: u32,
}

impl Timeline {
    /// Start the clock now.
    pub fn new() -> Timeline {
        Timeline {
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The progress callback.
    pub fn event(&self, e: Event) {
        let now = self.start.elapsed().as_secs_f64();
        self.record(e, now);
    }

    fn record(&self, e: Event, now: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Begin { subjects, .. } => {
                g.end_lab_step(now);
                for s in subjects {
                    g.current.insert(s, (QUEUED.to_owned(), now));
                }
            }
            Event::Step { subject, step } => {
                g.end_lab_step(now);
                let prev = g.current.insert(subject, (step.to_string(), now));
                if let Some((step, since)) = prev {
                    g.close(step, since, now);
                }
            }
            Event::Done { subject, .. } => {
                g.done += 1;
                g.finish(&subject, now);
            }
            Event::Failed { subject, .. } => {
                g.failed += 1;
                g.finish(&subject, now);
            }
            Event::Lab { step } => {
                g.end_lab_step(now);
                g.lab = Some((step.to_string(), now));
            }
            _ => {}
        }
    }

    /// Per-step times so far (a lab-wide step still open ends now).
    pub fn summary(&self) -> Summary {
        let now = self.start.elapsed().as_secs_f64();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.end_lab_step(now);
        let mut steps: Vec<StepTime> = g
            .spans
            .iter()
            .map(|(step, &(sum, count, first, last))| StepTime {
                step: step.clone(),
                count,
                mean_s: if count > 0 {
                    sum / f64::from(count)
                } else {
                    0.0
                },
                span_s: (last - first).max(0.0),
                first_s: first,
            })
            .collect();
        steps.sort_by(|a, b| a.first_s.total_cmp(&b.first_s).then(a.step.cmp(&b.step)));
        Summary {
            steps,
            done: g.done,
            failed: g.failed,
        }
    }
}

impl Inner {
    fn finish(&mut self, subject: &str, now: f64) {
        self.end_lab_step(now);
        if let Some((step, since)) = self.current.remove(subject) {
            self.close(step, since, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_core::Step;

    fn step(subject: &str, step: Step) -> Event {
        Event::Step {
            subject: subject.into(),
            step,
        }
    }

    #[test]
    fn steps_last_until_the_next_event_of_their_subject() {
        let t = Timeline::new();
        t.record(
            Event::Begin {
                operation: "up",
                subjects: vec!["a".into(), "b".into()],
            },
            0.0,
        );
        t.record(
            Event::Lab {
                step: Step::Prepare,
            },
            0.0,
        );
        t.record(step("a", Step::Clone), 1.0);
        t.record(step("b", Step::Clone), 3.0);
        t.record(step("a", Step::Start), 4.0);
        t.record(
            Event::Done {
                subject: "a".into(),
                summary: "ok".into(),
            },
            6.0,
        );
        t.record(
            Event::Failed {
                subject: "b".into(),
                message: "boom".into(),
            },
            9.0,
        );
        let s = t.summary();
        let get = |name: &str| s.steps.iter().find(|x| x.step == name).cloned().unwrap();
        let queued = get(QUEUED);
        assert_eq!((queued.count, queued.mean_s), (2, 2.0)); // a: 1 s, b: 3 s
        let cloning = get("cloning");
        assert_eq!(
            (cloning.count, cloning.mean_s, cloning.span_s),
            (2, 4.5, 8.0)
        );
        assert_eq!(get("starting").mean_s, 2.0);
        assert_eq!(get("lab: creating pool").mean_s, 1.0);
        assert_eq!((s.done, s.failed), (1, 1));
        assert_eq!(s.steps[0].first_s, 0.0);
    }
}
