//! Running the planned probes of a class and recording their evidence: identical probes
//! of a student run once, a bounded number run at a time, outside probes (teacher, host)
//! before inside ones, and a probe whose evidence is already on disk is not run again —
//! a killed collection is resumed by running it again.
//!
//! What a probe *does* is the [`Runner`]'s business (labctl's runs it through the guest
//! agent or from the host); this module only schedules, repeats and records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::evidence::{
    Blob, ErrorKind, Evidence, ProbeError, Store, StoreError, StudentInfo, Target,
};
use crate::probe::{PlannedProbe, Source};
use crate::time::rfc3339_millis;

/// One try of one probe, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// The machine that ran it.
    pub target: Target,
    /// When the try started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Exit code.
    pub exit: Option<i64>,
    /// Signal.
    pub signal: Option<i64>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The agent cut the output.
    pub truncated: bool,
    /// Why the probe could not run.
    pub error: Option<ProbeError>,
}

impl Raw {
    /// A try that could not run.
    pub fn failed(target: Target, start: SystemTime, kind: ErrorKind, message: String) -> Self {
        Raw {
            target,
            start,
            end: SystemTime::now(),
            exit: None,
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            error: Some(ProbeError { kind, message }),
        }
    }
}

/// Runs one probe once. Never fails: a probe that could not run is a [`Raw`] with an
/// error, which the evidence records.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs `probe` for `student`.
    async fn run(&self, student: &StudentInfo, probe: &PlannedProbe) -> Raw;
}

/// How to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Probes in flight at once over the class (the runner bounds each node further). A
    /// probe in flight mostly waits for its command in the guest, which holds no API
    /// worker: 256 by default (the benchmark: with 32, the exec-status polls of waiting
    /// commands made most of the requests and the makespan 1.8 times longer).
    pub concurrency: usize,
    /// Run again the probes whose evidence records an error (agent down, timeout, …).
    pub redo_errors: bool,
    /// Extra tries after a lost result or a timeout (probes only read, so a repeat is safe).
    pub error_retries: u32,
    /// Pause before such a retry.
    pub error_pause: Duration,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            concurrency: 256,
            redo_errors: false,
            error_retries: 1,
            error_pause: Duration::from_secs(1),
        }
    }
}

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Probe runs made (each try counts).
    pub runs: usize,
    /// Evidence files written.
    pub written: usize,
    /// Probes skipped because their evidence was already there.
    pub kept: usize,
    /// Evidence files recording an error (written now or kept from before).
    pub errors: usize,
    /// Students whose earlier evidence was not kept: another guest (id, identity or
    /// values changed since), or files changed after they were sealed.
    pub stale: Vec<String>,
    /// Students sealed (manifest written).
    pub sealed: usize,
}

/// A probe group: the probe ids of one student that share a run.
struct Job {
    student: usize,
    probe: PlannedProbe,
    ids: Vec<String>,
}

/// Whether evidence on disk stands for `probe` (same request, where and timeout) and
/// need not run again.
fn still_good(ev: &Evidence, probe: &PlannedProbe, redo_errors: bool) -> bool {
    ev.request == probe.request
        && ev.source == probe.source
        && !(redo_errors && (ev.error.is_some() || ev.truncated))
}

/// Collects every student's planned probes into `store`; `settled(student, evidence)`
/// tells whether a probe with a retry-until may stop (its positive checks pass).
/// `on_done` is called after each evidence file is written (for progress).
pub async fn collect<R, S, D>(
    runner: &R,
    store: &Store,
    students: &[(StudentInfo, Vec<PlannedProbe>)],
    settled: S,
    options: &CollectOptions,
    on_done: D,
) -> Result<CollectReport, StoreError>
where
    R: Runner + ?Sized,
    S: Fn(&StudentInfo, &Evidence) -> bool + Sync,
    D: Fn(&StudentInfo, &Evidence) + Sync,
{
    let mut report = CollectReport::default();
    let mut jobs = Vec::new();
    let mut left = vec![0usize; students.len()];
    for (i, (info, probes)) in students.iter().enumerate() {
        // Evidence on disk counts only for the same guest and values, and only while it
        // matches the manifest that sealed it.
        let same_student = store.student(&info.key).is_none_or(|old| old == *info);
        let changed: Vec<String> = if same_student && store.sealed(&info.key) {
            store
                .verify(&info.key)?
                .into_iter()
                .map(|(file, _)| file)
                .collect()
        } else {
            Vec::new()
        };
        if !same_student || !changed.is_empty() {
            report.stale.push(info.key.clone());
        }
        store.write_student(info)?;
        // Dedup: one run per (source, request, timeout); the ids share its evidence.
        let mut groups: BTreeMap<String, Job> = BTreeMap::new();
        for p in probes {
            let key = serde_json::to_string(&p.dedup_key()).unwrap_or_else(|_| p.id.clone());
            groups
                .entry(key)
                .and_modify(|j| {
                    j.ids.push(p.id.clone());
                    // The longest retry of the group applies to the shared run.
                    if p.retry.map(|r| r.within) > j.probe.retry.map(|r| r.within) {
                        j.probe.retry = p.retry;
                    }
                })
                .or_insert_with(|| Job {
                    student: i,
                    probe: p.clone(),
                    ids: vec![p.id.clone()],
                });
        }
        for job in groups.into_values() {
            let kept: Vec<Evidence> = job
                .ids
                .iter()
                .filter(|id| same_student && !changed.contains(&format!("{id}.json")))
                .filter_map(|id| store.finished(&info.key, id))
                .filter(|ev| still_good(ev, &job.probe, options.redo_errors))
                .collect();
            if kept.len() == job.ids.len() {
                report.kept += job.ids.len();
                report.errors += kept
                    .iter()
                    .filter(|ev| ev.error.is_some() || ev.truncated)
                    .count();
            } else {
                left[i] += 1;
                jobs.push(job);
            }
        }
    }
    // Outside probes first: they see the network as the students left it.
    jobs.sort_by_key(|j| (j.probe.source == Source::Guest, j.student));
    // Students with nothing left to run are sealed now (their manifest may be missing
    // after a kill between the last probe and the seal).
    for (i, (info, _)) in students.iter().enumerate() {
        if left[i] == 0 {
            store.seal(&info.key)?;
            report.sealed += 1;
        }
    }
    let left = Arc::new(std::sync::Mutex::new(left));
    let results: Vec<Result<(usize, usize, bool, bool), StoreError>> = stream::iter(jobs)
        .map(|job| {
            let left = Arc::clone(&left);
            let settled = &settled;
            let on_done = &on_done;
            async move {
                let (info, _) = &students[job.student];
                let (ev, runs) = run_job(runner, info, &job.probe, settled, options).await;
                let failed = ev.error.is_some() || ev.truncated;
                for id in &job.ids {
                    let mut e = ev.clone();
                    e.probe.clone_from(id);
                    store.write(&e)?;
                    on_done(info, &e);
                }
                let last = {
                    let mut l = left.lock().unwrap_or_else(|p| p.into_inner());
                    l[job.student] -= 1;
                    l[job.student] == 0
                };
                if last {
                    store.seal(&info.key)?;
                }
                Ok((runs, job.ids.len(), failed, last))
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        let (runs, written, failed, sealed) = r?;
        report.runs += runs;
        report.written += written;
        if failed {
            report.errors += written;
        }
        report.sealed += usize::from(sealed);
    }
    Ok(report)
}

/// Runs one probe until it has a result worth keeping: repeats after a lost result or a
/// timeout (`error_retries`), and while a retry-until is not settled.
async fn run_job<R, S>(
    runner: &R,
    info: &StudentInfo,
    probe: &PlannedProbe,
    settled: &S,
    options: &CollectOptions,
) -> (Evidence, usize)
where
    R: Runner + ?Sized,
    S: Fn(&StudentInfo, &Evidence) -> bool + Sync,
{
    let began = Instant::now();
    let mut runs = 0usize;
    let mut error_retries = options.error_retries;
    loop {
        let raw = runner.run(info, probe).await;
        runs += 1;
        let ev = evidence(info, probe, raw, runs);
        let retryable = ev.error.as_ref().is_some_and(|e| {
            matches!(
                e.kind,
                ErrorKind::ResultLost | ErrorKind::Timeout | ErrorKind::Api
            )
        });
        if retryable && error_retries > 0 {
            error_retries -= 1;
            tokio::time::sleep(options.error_pause).await;
            continue;
        }
        if let (Some(r), None) = (probe.retry, &ev.error) {
            if !settled(info, &ev) && began.elapsed() + r.every <= r.within {
                tokio::time::sleep(r.every).await;
                continue;
            }
        }
        return (ev, runs);
    }
}

fn evidence(info: &StudentInfo, probe: &PlannedProbe, raw: Raw, attempts: usize) -> Evidence {
    let stdout = Blob(raw.stdout);
    Evidence {
        probe: probe.id.clone(),
        student: info.key.clone(),
        source: probe.source,
        request: probe.request.clone(),
        target: raw.target,
        start: rfc3339_millis(raw.start),
        end: rfc3339_millis(raw.end),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        exit: raw.exit,
        signal: raw.signal,
        sha256: stdout.sha256(),
        stdout,
        stderr: Blob(raw.stderr),
        truncated: raw.truncated,
        error: raw.error,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::probe::{Request, RetryUntil};

    /// Answers `exec ["echo", X]` with X, counting runs per (student, argv); the first
    /// `lose` runs of an argv lose their result.
    #[derive(Default)]
    struct Echo {
        runs: Mutex<BTreeMap<(String, String), usize>>,
        lose: usize,
        total: AtomicUsize,
    }

    #[async_trait]
    impl Runner for Echo {
        async fn run(&self, student: &StudentInfo, probe: &PlannedProbe) -> Raw {
            self.total.fetch_add(1, Ordering::SeqCst);
            let Request::Exec { argv } = &probe.request else {
                panic!("the test only plans exec probes");
            };
            let n = {
                let mut m = self.runs.lock().unwrap();
                let c = m.entry((student.key.clone(), argv.join(" "))).or_default();
                *c += 1;
                *c
            };
            let target = Target {
                vmid: Some(student.vmid),
                node: Some(student.node.clone()),
                name: student.hostname.clone(),
            };
            let now = SystemTime::now();
            if n <= self.lose {
                return Raw::failed(target, now, ErrorKind::ResultLost, "lost".into());
            }
            Raw {
                target,
                start: now,
                end: now,
                exit: Some(0),
                signal: None,
                stdout: format!("{} {n}\n", argv[1..].join(" ")).into_bytes(),
                stderr: Vec::new(),
                truncated: false,
                error: None,
            }
        }
    }

    fn student(key: &str) -> StudentInfo {
        StudentInfo {
            key: key.into(),
            name: key.into(),
            hostname: key.into(),
            vmid: 5000,
            node: "pve1".into(),
            vars: BTreeMap::new(),
        }
    }

    fn exec(id: &str, word: &str) -> PlannedProbe {
        PlannedProbe {
            id: id.into(),
            source: Source::Guest,
            request: Request::Exec {
                argv: vec!["echo".into(), word.into()],
            },
            timeout: Duration::from_secs(5),
            retry: None,
        }
    }

    fn options() -> CollectOptions {
        CollectOptions {
            error_pause: Duration::ZERO,
            ..CollectOptions::default()
        }
    }

    #[tokio::test]
    async fn identical_probes_run_once_and_are_recorded_under_each_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let plan = vec![(
            student("s1"),
            vec![exec("a", "x"), exec("b", "x"), exec("c", "y")],
        )];
        let runner = Echo::default();
        let r = collect(&runner, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!(runner.total.load(Ordering::SeqCst), 2);
        assert_eq!((r.runs, r.written, r.sealed), (2, 3, 1));
        assert_eq!(store.finished("s1", "b").unwrap().stdout.text(), "x 1\n");
        assert_eq!(store.finished("s1", "b").unwrap().probe, "b");
        assert!(store.verify("s1").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_second_collection_runs_only_what_is_missing_or_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let runner = Echo::default();
        let plan = vec![
            (student("s1"), vec![exec("a", "x")]),
            (student("s2"), vec![exec("a", "x")]),
        ];
        collect(&runner, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        // A kill lost s2's evidence; s1's probe "a" now asks something else.
        std::fs::remove_file(store.probe_path("s2", "a")).unwrap();
        let plan = vec![
            (student("s1"), vec![exec("a", "z")]),
            (student("s2"), vec![exec("a", "x")]),
        ];
        let r = collect(&runner, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.kept), (2, 0));
        assert_eq!(store.finished("s1", "a").unwrap().stdout.text(), "z 1\n");
        let again = collect(&runner, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((again.runs, again.kept, again.sealed), (0, 2, 2));
        assert!(store.verify("s1").unwrap().is_empty());
        assert!(store.verify("s2").unwrap().is_empty());
    }

    #[tokio::test]
    async fn evidence_of_another_guest_or_edited_after_sealing_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let runner = Echo::default();
        let plan = vec![(student("s1"), vec![exec("a", "x"), exec("b", "y")])];
        collect(&runner, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        // The lab was torn down and brought up again: same id, another guest.
        let mut again = student("s1");
        again.vars.insert("instance".into(), "another clone".into());
        let plan2 = vec![(again, vec![exec("a", "x"), exec("b", "y")])];
        let r = collect(&runner, &store, &plan2, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.kept, r.stale.len()), (2, 0, 1));
        // Someone edits a sealed file: it is collected again, not sealed as it is.
        let path = store.probe_path("s1", "a");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("x 2", "x 9");
        std::fs::write(&path, text).unwrap();
        let r = collect(&runner, &store, &plan2, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.kept), (1, 1));
        assert_eq!(store.finished("s1", "a").unwrap().stdout.text(), "x 3\n");
        assert!(store.verify("s1").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lost_result_is_tried_again_once_then_recorded_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let plan = vec![(student("s1"), vec![exec("a", "x")])];
        let once = Echo {
            lose: 1,
            ..Echo::default()
        };
        let r = collect(&once, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.errors), (2, 0));
        assert_eq!(store.finished("s1", "a").unwrap().attempts, 2);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let always = Echo {
            lose: 10,
            ..Echo::default()
        };
        let r = collect(&always, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.errors), (2, 1));
        let ev = store.finished("s1", "a").unwrap();
        assert_eq!(ev.error.unwrap().kind, ErrorKind::ResultLost);
        // Kept on a plain re-run, run again with redo_errors.
        let r = collect(&always, &store, &plan, |_, _| true, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!((r.runs, r.errors), (0, 1), "a kept error still counts");
        let redo = CollectOptions {
            redo_errors: true,
            ..options()
        };
        let r = collect(&always, &store, &plan, |_, _| true, &redo, |_, _| {})
            .await
            .unwrap();
        assert_eq!(r.runs, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_until_repeats_until_settled_and_no_longer_than_within() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let mut p = exec("a", "x");
        p.retry = Some(RetryUntil {
            within: Duration::from_secs(10),
            every: Duration::from_secs(2),
        });
        let plan = vec![(student("s1"), vec![p])];
        let runner = Echo::default();
        // Settles on the third run.
        let settled = |_: &StudentInfo, ev: &Evidence| ev.stdout.text() == "x 3\n";
        let r = collect(&runner, &store, &plan, settled, &options(), |_, _| {})
            .await
            .unwrap();
        assert_eq!(r.runs, 3);
        assert_eq!(store.finished("s1", "a").unwrap().attempts, 3);
        // Never settles: 1 run at 0 s, then every 2 s while within 10 s → 6 runs.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let r = collect(
            &Echo::default(),
            &store,
            &plan,
            |_, _| false,
            &options(),
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(r.runs, 6);
    }
}
