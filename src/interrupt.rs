//! Ctrl-C: the first one stops dispatching new work and lets in-flight commands finish (their
//! results are reported, failure hooks run); the second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::exit;

/// Installs the handler on a small tokio runtime thread and returns the flag it sets.
pub fn install() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                // Counted apart from the flag: failure hooks clear the flag to run, and a
                // second Ctrl-C must still end the process.
                let mut presses = 0;
                while tokio::signal::ctrl_c().await.is_ok() {
                    presses += 1;
                    seen.store(true, Ordering::SeqCst);
                    if presses > 1 {
                        eprintln!("\ninterrupted twice: exiting now");
                        std::process::exit(exit::INTERRUPTED);
                    }
                    eprintln!(
                        "\ninterrupted: no new commands; waiting for running ones (Ctrl-C again to exit now)"
                    );
                }
            });
        });
    if spawned.is_err() {
        eprintln!("warning: cannot watch for Ctrl-C; it will end tether at once");
    }
    flag
}
