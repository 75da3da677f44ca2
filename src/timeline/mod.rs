//! The timeline of a run: one self-contained HTML page (inline SVG and CSS, no script, nothing
//! fetched) that shows what every host did and for how long: commands as bars labelled with
//! their task and coloured by outcome, idle stretches with a tick per heartbeat, reconnects and
//! re-attaches marked, tasks as bands, and a header saying what ran and how it ended.
//!
//! It is drawn from the JSON lines of an event stream (`--format json`, an event tap), never
//! from tether's internals, so `tether report FILE` and `--timeline` draw the same page for
//! the same run. `read.rs` reads the lines, `build.rs` builds runs (`model.rs`) from them,
//! `svg.rs` and `page.rs` draw, `recording.rs` records a run in progress.

use std::io::BufRead;

mod build;
mod clock;
mod error;
pub mod model;
mod page;
pub mod read;
mod recording;
mod scale;
mod svg;
mod text;

pub use error::TimelineError;
pub use read::ReadError;
pub use recording::{write_atomically, Recording};

/// A page made from a stream.
#[derive(Debug)]
pub struct Rendered {
    /// The HTML.
    pub html: String,
    /// The run drawn (from 1).
    pub run: usize,
    /// Runs in the stream.
    pub runs: usize,
    /// Its hosts.
    pub hosts: usize,
    /// Its commands.
    pub commands: usize,
}

/// Reads the event stream `input` and draws run `which` (from 1; `None`: the last).
pub fn render(input: impl BufRead, which: Option<usize>) -> Result<Rendered, TimelineError> {
    let mut runs = build::Runs::default();
    let mut events = 0;
    read::for_each(input, |entry| {
        events += 1;
        runs.push(&entry);
    })?;
    let runs = runs.finish();
    if runs.is_empty() {
        return Err(TimelineError::NoRun { events });
    }
    let index = match which {
        None => runs.len(),
        Some(n) if (1..=runs.len()).contains(&n) => n,
        Some(n) => {
            return Err(TimelineError::NoSuchRun {
                asked: n,
                runs: runs.len(),
            })
        }
    };
    let run = &runs[index - 1];
    Ok(Rendered {
        html: page::page(run, index, runs.len()),
        run: index,
        runs: runs.len(),
        hosts: run.hosts.len(),
        commands: run.commands(),
    })
}
