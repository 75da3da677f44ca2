//! The test process's own threads, as Linux shows them in /proc/self/task (proc(5)).

use std::time::{Duration, Instant};

/// The id of this process's thread named `name` (its comm: the first 15 bytes of the name
/// given to `std::thread::Builder`); waits up to 5 s for it to appear, and panics when it
/// does not or when two threads have that name.
pub fn named(name: &str) -> u32 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<u32> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                (comm.trim_end() == name).then(|| e.file_name().to_str()?.parse().ok())?
            })
            .collect();
        match found[..] {
            [tid] => return tid,
            [] if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("threads named {name:?}: {found:?}"),
        }
    }
}

/// How many times thread `tid` of this process has blocked (its `voluntary_ctxt_switches`):
/// each time it slept, so each time it was woken again.
pub fn voluntary_switches(tid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no voluntary_ctxt_switches for thread {tid}"))
}
