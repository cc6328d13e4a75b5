//! The one confirmation rule: what destroys, interrupts or cannot be undone (`lab down`,
//! `vm destroy|stop|shutdown|reboot|template`, `lab access revoke`, `lab access grant
//! --reset-password`) shows what it will do, then asks here: on a terminal a yes/no
//! question, otherwise `--yes` is needed. `--dry-run` never reaches this.

use std::io::{BufRead, IsTerminal, Write};

/// Goes ahead only if `yes` was given or the user answers `y` on the terminal. `what` lists
/// what would be destroyed (already shown to the user). Without a terminal and without
/// `--yes` nothing is changed and the error (exit 2) says why.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(crate::fail::usage(format!(
            "not confirmed, nothing changed: stdin is not a terminal to ask \"{question}\"; \
             pass --yes to go ahead (or --dry-run to only look)"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(crate::fail::with_code(
            crate::fail::OTHER,
            "not confirmed: nothing changed",
        )),
    }
}
