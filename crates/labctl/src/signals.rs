//! Ctrl-C and SIGTERM during long work: the first asks the engine to stop gracefully
//! (nothing new starts, requests and clone tasks in flight settle, the command says where
//! each student stands and how to resume); a second one ends the process at once.

use lab_core::Interrupt;
use tokio::task::JoinHandle;

/// Listens while alive; dropped when the work is done.
pub struct Guard(JoinHandle<()>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Triggers `interrupt` on the first Ctrl-C or SIGTERM, exits (130) on the second.
pub fn on_interrupt(interrupt: Interrupt, what: &'static str) -> Guard {
    Guard(tokio::spawn(async move {
        let mut term = terminate();
        next_signal(&mut term).await;
        interrupt.trigger();
        eprintln!(
            "\n{what}: interrupted, letting the requests in flight settle \
             (press Ctrl-C again to quit at once)"
        );
        next_signal(&mut term).await;
        eprintln!("{what}: quitting now; run it again to resume");
        std::process::exit(130);
    }))
}

#[cfg(unix)]
type Term = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Term = Option<()>;

#[cfg(unix)]
fn terminate() -> Term {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()
}

#[cfg(not(unix))]
fn terminate() -> Term {
    None
}

async fn next_signal(term: &mut Term) {
    #[cfg(unix)]
    let sigterm = async {
        match term {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let sigterm = {
        let _ = term;
        std::future::pending::<()>()
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                // No Ctrl-C handler on this platform: only SIGTERM can interrupt.
                std::future::pending::<()>().await;
            }
        }
        () = sigterm => {}
    }
}
