//! `labctl lab up|status|ips|down`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use lab_core::{
    apply, plan_down, plan_up, status, teardown, CloneMode, DownOptions, HostnamePattern,
    Hypervisor, IdRange, LabName, LabSpec, Timeouts, VmId,
};

use crate::progress::{half_done, Bars};
use crate::table;

/// The lab subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Clone, start and wait for the students, read their addresses, fence them.
    ///
    /// Re-running is safe: students that exist (same lab, same host name) are kept or
    /// started, missing ones are cloned, and the fence is brought up to date.
    #[command(after_help = "\
Examples:
  labctl lab up -n exam1 -t 9000 -c 20 --teacher 10.10.0.1 --dry-run   # the plan only
  labctl lab up -n exam1 -t 9000 -c 20 --hostname 'pc-{n:02}' --teacher 10.10.0.1
  labctl lab up -n exam1 -t 9000 -c 20 --ids 7000-7099 --full --concurrency 8

Students get the lowest free ids of --ids, join pool <LAB> and carry the tag labctl.<LAB>;
`lab down -n <LAB>` later removes exactly them.")]
    Up(UpArgs),
    /// Show the lab's students: id, host name, node, state, address.
    #[command(after_help = "Example:\n  labctl lab status -n exam1")]
    Status(NameArg),
    /// Print `IP<TAB>HOSTNAME` per student (ready for /etc/hosts or an exam sheet).
    #[command(after_help = "Example:\n  labctl lab ips -n exam1 | sudo tee -a /etc/hosts")]
    Ips(NameArg),
    /// Lift the fence, stop and destroy the lab's students, remove its pool.
    ///
    /// Only guests in the lab's pool AND carrying its tag `labctl.<lab>` are touched,
    /// never a template; anything else is listed and left alone.
    #[command(after_help = "\
Examples:
  labctl lab down -n exam1 --dry-run   # lists what would be destroyed and what is kept
  labctl lab down -n exam1

If a guest fails, the others are still destroyed and labctl lists what was done; run the
same command again to finish.")]
    Down(DownArgs),
    /// Student logins on their own guests: grant, sheet, verify, revoke.
    #[command(subcommand)]
    Access(crate::access::AccessCommand),
}

/// The lab name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Lab name: 1-14 characters, a lower-case letter, then lower-case letters, digits or
    /// `-`. Names the pool, the tag `labctl.<lab>` and the firewall group `iso-<lab>`.
    #[arg(long, short = 'n', env = "LABCTL_LAB", value_name = "LAB")]
    pub name: String,
}

/// `lab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    lab: NameArg,
    /// Template to clone from (a VMID).
    #[arg(long, short = 't', value_name = "VMID")]
    template: String,
    /// Number of students (1-500).
    #[arg(long, short = 'c', value_name = "N")]
    count: u32,
    /// Ids the students may take; the lowest free ones are used.
    #[arg(long, value_name = "FIRST-LAST", default_value = "5000-5999")]
    ids: String,
    /// Host name pattern: letters, digits and `-` around the student number (from 1),
    /// written as n in braces, or `{n:02}` to zero-pad to 2 digits (`{n:03}`: 3, …).
    /// Default: `<lab>-{n:02}`.
    #[arg(long, value_name = "PATTERN")]
    hostname: Option<String>,
    /// Address students may reach (the teacher's machine); repeat for several. Without it
    /// the students are not fenced.
    #[arg(long = "teacher", value_name = "IP")]
    teachers: Vec<IpAddr>,
    /// Full clones (independent disks) instead of linked clones.
    #[arg(long)]
    full: bool,
    /// Students processed at the same time (1-64).
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Longest wait for a student's guest agent, in seconds (1-86400).
    #[arg(long, default_value_t = 300, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ready_timeout: u64,
    /// Only show what would be created, started and fenced.
    #[arg(long)]
    dry_run: bool,
}

/// `lab down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    lab: NameArg,
    /// Guests processed at the same time (1-64).
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Only show what would be destroyed and what would be left alone.
    #[arg(long)]
    dry_run: bool,
}

impl UpArgs {
    /// The checked spec; fails on bad input before anything is contacted.
    pub fn spec(&self) -> anyhow::Result<LabSpec> {
        let name = LabName::new(&self.lab.name)?;
        let template: VmId = self.template.parse()?;
        let hostname = match &self.hostname {
            Some(p) => HostnamePattern::new(p)?,
            None => HostnamePattern::new(&format!("{name}-{{n:02}}"))?,
        };
        let spec = LabSpec {
            name,
            template,
            count: self.count,
            ids: self.ids.parse::<IdRange>()?,
            hostname,
            names: None,
            teachers: self.teachers.clone(),
            clone_mode: if self.full {
                CloneMode::Full
            } else {
                CloneMode::Linked
            },
            concurrency: self.concurrency,
            timeouts: scaled(Timeouts {
                ready: Duration::from_secs(self.ready_timeout),
                ..Timeouts::default()
            })?,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl LabCommand {
    /// Checks the input that needs no cluster (so typos fail before a password prompt).
    pub fn check(&self) -> anyhow::Result<()> {
        match self {
            LabCommand::Up(a) => a.spec().map(|_| ()),
            LabCommand::Status(n) | LabCommand::Ips(n) => {
                LabName::new(&n.name).map(|_| ()).map_err(Into::into)
            }
            LabCommand::Down(d) => {
                LabName::new(&d.lab.name)?;
                check_concurrency(d.concurrency)
            }
            LabCommand::Access(a) => a.check(),
        }
    }
}

/// Waits matched to a simulator's time scale (`LABCTL_TIME_SCALE`), else as given.
fn scaled(t: Timeouts) -> anyhow::Result<Timeouts> {
    Ok(match crate::connect::time_scale()? {
        Some(f) => t.scaled(f),
        None => t,
    })
}

fn check_concurrency(n: usize) -> anyhow::Result<()> {
    if !(1..=lab_core::MAX_CONCURRENCY).contains(&n) {
        anyhow::bail!(
            "invalid concurrency \"{n}\": between 1 and {}",
            lab_core::MAX_CONCURRENCY
        );
    }
    Ok(())
}

/// Runs a lab subcommand against `hv`.
pub async fn run(cmd: &LabCommand, hv: &dyn Hypervisor) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Up(args) => {
            let spec = args.spec()?;
            if args.dry_run {
                let plan = plan_up(hv, &spec).await?;
                print!("{plan}");
                println!("dry run: nothing changed");
                return Ok(());
            }
            let bars = Bars::new();
            let result = apply(hv, &spec, &|e| bars.event(e)).await;
            bars.finish();
            if result.is_err() {
                print!("{}", half_done("brought up", &bars.done()));
            }
            let report = result.with_context(|| format!("lab up {}", spec.name))?;
            print!("{}", table::students(&report.students));
            if report.fenced {
                let allowed: Vec<String> = spec.teachers.iter().map(ToString::to_string).collect();
                println!(
                    "fenced: students reach only {} and not each other",
                    allowed.join(", ")
                );
            } else {
                println!("not fenced (no --teacher given)");
            }
        }
        LabCommand::Status(n) => {
            let rows = status(hv, &LabName::new(&n.name)?).await?;
            if rows.is_empty() {
                println!("lab {}: no students", n.name);
            } else {
                print!("{}", table::students(&rows));
            }
        }
        LabCommand::Ips(n) => {
            let rows = status(hv, &LabName::new(&n.name)?).await?;
            print!("{}", table::ips(&rows));
        }
        LabCommand::Down(args) => {
            let lab = LabName::new(&args.lab.name)?;
            check_concurrency(args.concurrency)?;
            if args.dry_run {
                print!("{}", plan_down(hv, &lab).await?);
                println!("dry run: nothing changed");
                return Ok(());
            }
            let bars = Bars::new();
            let options = DownOptions {
                concurrency: args.concurrency,
                retry: scaled(Timeouts::default())?.retry,
            };
            let result = teardown(hv, &lab, &options, &|e| bars.event(e)).await;
            bars.finish();
            if result.is_err() {
                print!("{}", half_done("destroyed", &bars.done()));
            }
            let plan = result.with_context(|| format!("lab down {lab}"))?;
            print!("{plan}");
            println!("lab {lab} is down: {} guests destroyed", plan.destroy.len());
        }
        // Dispatched in main, where the connection is at hand.
        LabCommand::Access(_) => anyhow::bail!("`lab access` runs from main"),
    }
    Ok(())
}
