//! A lab's JSON record beside its lab file (`<lab>-freeze.json`, `<lab>-reset.json`):
//! read once, changed under a lock, and rewritten whole and atomically after every
//! change, so a run killed at any moment leaves the last complete state on disk.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use lab_core::LabName;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fail;

/// A record kept by [`Journal`].
pub(crate) trait LabRecord: Clone + Serialize + DeserializeOwned {
    /// What it is called in messages (`freeze manifest`, `reset record`).
    const WHAT: &'static str;
    /// What to do with one that cannot be read.
    const UNREADABLE: &'static str;
    /// Added when the file is another lab's.
    const OTHER_LAB: &'static str;
    /// The lab it belongs to.
    fn lab(&self) -> &str;
    /// An empty record of `lab`.
    fn empty(lab: &LabName) -> Self;
}

/// The record on disk and in memory.
pub(crate) struct Journal<T> {
    path: PathBuf,
    value: Mutex<T>,
}

impl<T: LabRecord> Journal<T> {
    /// Reads `path` (an empty record when it does not exist); refuses a file that is not
    /// JSON of this kind or belongs to another lab.
    pub(crate) fn open(path: PathBuf, lab: &LabName) -> anyhow::Result<Self> {
        let value = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v: T = serde_json::from_str(&text).map_err(|e| {
                    fail::usage(format!(
                        "the {} {} is not readable ({e}); {}",
                        T::WHAT,
                        path.display(),
                        T::UNREADABLE
                    ))
                })?;
                if v.lab() != lab.as_str() {
                    return Err(fail::usage(format!(
                        "{} is the {} of lab {}, not {lab}{}",
                        path.display(),
                        T::WHAT,
                        v.lab(),
                        T::OTHER_LAB
                    )));
                }
                v
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::empty(lab),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        Ok(Self {
            path,
            value: Mutex::new(value),
        })
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where it is kept.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the record now.
    pub(crate) fn snapshot(&self) -> T {
        self.lock().clone()
    }

    /// Changes the record and writes it (a temporary file renamed into place).
    pub(crate) fn update(&self, change: impl FnOnce(&mut T)) -> anyhow::Result<()> {
        let mut v = self.lock();
        change(&mut v);
        let text = serde_json::to_string_pretty(&*v)? + "\n";
        lab_grade::write_atomic(&self.path, text.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `<lab>-<suffix>.json` beside the lab file, else in the current directory.
pub(crate) fn beside(lab: &LabName, file: Option<&Path>, suffix: &str) -> PathBuf {
    let name = format!("{lab}-{suffix}.json");
    match file.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}
