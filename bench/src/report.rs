//! Results: what each group measured, the machine it ran on, the table printed to the
//! terminal and the JSON written for tools (`target/bench/results.json`).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::measure::GroupMemory;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `labctl-bench` and its version.
    pub tool: String,
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Where it ran.
    pub machine: Machine,
    /// One entry per benchmark group, in the order they ran.
    pub groups: Vec<Group>,
}

/// The machine a run happened on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo`, when there is one.
    pub cpu_model: Option<String>,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

impl Machine {
    /// Describe the current machine.
    pub fn current() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| cpu_model(&info));
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The results of one benchmark group.
#[derive(Debug, Serialize)]
pub struct Group {
    /// Short name (`schema`, `firewall`, `http`, `lab`).
    pub name: &'static str,
    /// What was measured, in one sentence.
    pub description: String,
    /// The figures, in display order.
    pub metrics: Vec<Metric>,
    /// Memory after the group (`None` off Linux).
    pub memory: Option<GroupMemory>,
    /// Further detail for tools (sizes, request breakdowns), not shown in the table.
    pub details: Value,
}

impl Group {
    /// A group without figures yet.
    pub fn new(name: &'static str, description: impl Into<String>) -> Group {
        Group {
            name,
            description: description.into(),
            metrics: Vec::new(),
            memory: None,
            details: Value::Null,
        }
    }

    /// Add a figure.
    pub fn metric(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
        });
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// What it is (`clone: match+validate`).
    pub name: String,
    /// The value in `unit`.
    pub value: f64,
    /// `ops/s`, `µs`, `ms`, `req/s`, `KiB`, `bytes`, `count`.
    pub unit: &'static str,
}

/// A number for humans: thousands separated, few decimals for large values, more for small.
pub fn human(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let abs = value.abs();
    let decimals = if abs >= 1000.0 || value.fract() == 0.0 {
        0
    } else if abs >= 10.0 {
        1
    } else if abs >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

impl Report {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "labctl benchmarks ({} mode) on {} CPU(s), {}, {}",
            self.mode,
            m.nproc,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            m.os
        );
        let width = self
            .groups
            .iter()
            .flat_map(|g| g.metrics.iter().map(|m| m.name.chars().count()))
            .chain(["process peak RSS".len()])
            .max()
            .unwrap_or(0);
        for g in &self.groups {
            let _ = writeln!(out, "\n{}: {}", g.name, g.description);
            for metric in &g.metrics {
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:>14} {}",
                    metric.name,
                    human(metric.value),
                    metric.unit
                );
            }
            if let Some(mem) = &g.memory {
                let mut rows = vec![("RSS after group", mem.rss_kib)];
                if let Some(peak) = mem.group_peak_kib {
                    rows.push(("group peak RSS", peak));
                }
                rows.push(("process peak RSS", mem.process_peak_kib));
                for (name, kib) in rows {
                    let _ = writeln!(out, "  {name:<width$}  {:>14} KiB", human(kib as f64));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human(1_234_567.89), "1,234,568");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(123.456), "123.5");
        assert_eq!(human(2.71234), "2.71");
        assert_eq!(human(0.01234), "0.012");
        assert_eq!(human(-12_345.0), "-12,345");
        assert_eq!(human(0.0), "0");
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn table_lists_every_metric_and_memory_row() {
        let mut g = Group::new("schema", "route matching");
        g.metric("clone: match+validate", 123_456.7, "ops/s");
        g.memory = Some(GroupMemory {
            rss_kib: 2048,
            group_peak_kib: Some(4096),
            process_peak_kib: 8192,
        });
        let report = Report {
            tool: "labctl-bench".into(),
            mode: "quick",
            started_unix: 0,
            machine: Machine {
                nproc: 2,
                cpu_model: Some("Test CPU".into()),
                os: "linux/x86_64".into(),
            },
            groups: vec![g],
        };
        let table = report.table();
        assert!(table.starts_with("labctl benchmarks (quick mode) on 2 CPU(s), Test CPU"));
        assert!(table.contains("schema: route matching"), "{table}");
        let row = table
            .lines()
            .find(|l| l.contains("clone: match+validate"))
            .unwrap();
        assert!(row.ends_with("123,457 ops/s"), "{row}");
        assert!(table.contains("4,096 KiB"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["groups"][0]["metrics"][0]["unit"], "ops/s");
        assert_eq!(json["groups"][0]["memory"]["process_peak_kib"], 8192);
    }
}
