//! Shutdown as a value: SIGINT/SIGTERM set it, and the places that must stop
//! cleanly (the deploy's scheduler and watch) look at it and roll back,
//! instead of the process dying with half a deploy applied.

use tokio::sync::watch;

/// A cheap, cloneable view of "has shutdown been asked for".
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<String>>,
}

/// The side that asks for shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<Option<String>>,
}

impl Shutdown {
    /// A pair: the trigger for the signal handler, the view for the work.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(None);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A view that never triggers, for callers with no signals to honour.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        // Keep the sender alive for the life of the process so the view
        // never reports a closed channel.
        std::mem::forget(tx);
        Shutdown { rx }
    }

    /// Waits until shutdown is asked for.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Why shutdown was asked for (`SIGTERM`), if it was.
    pub fn reason(&self) -> Option<String> {
        self.rx.borrow().clone()
    }
}

impl ShutdownTrigger {
    /// Asks everything holding a [`Shutdown`] to stop, saying why.
    pub fn trigger(&self, reason: &str) {
        let _ = self.tx.send(Some(reason.to_string()));
    }
}

/// Turns SIGINT and SIGTERM into a shutdown request. A second signal is
/// left to its default action by the caller's choice of not listening
/// again: here the first one only asks, and the work decides how to stop.
pub fn listen_for_signals(trigger: ShutdownTrigger) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => trigger.trigger("SIGTERM"),
                _ = int.recv() => trigger.trigger("SIGINT"),
            }
            // Keep the handlers installed (and the trigger alive) so later
            // signals do not kill the process in the middle of a rollback.
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_ok() {
                trigger.trigger("interrupt");
            }
        }
    });
}
