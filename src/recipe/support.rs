//! Functions the stdlib modules (`stdlib/*.rhai`) need beyond the core language; recipes may
//! use them too: `utc_timestamp()`, `local_user()`, `local_run_dir()`, `fail(message)`,
//! `reached(host)`, `current_host()`, and `print`.

use std::sync::Arc;

use rhai::{Dynamic, Engine};

use super::args::Fallible;
use super::context::{self, Runtime};
use super::failures::throw;
use crate::event::EventKind;
use crate::failure::{Failure, Kind};
use crate::host_text::HostText;

/// `local_run_dir()`: a path for this run's own local files, `$TMPDIR/tether-run-PID-MS` (`/tmp`
/// without TMPDIR; tether's pid and the millisecond the run first asked), the same for the
/// whole run and no other run's: two runs on one machine (the shards of one deploy, the runs
/// of a watch) never share it. Nothing is created: `mkdir -m 700` makes it (and fails if
/// anything is there), so a dry run can show it.
fn local_run_dir(rt: &Runtime) -> String {
    rt.run_dir
        .get_or_init(|| {
            let tmp = std::env::var("TMPDIR")
                .ok()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "/tmp".into());
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!(
                "{}/tether-run-{}-{ms}",
                tmp.trim_end_matches('/'),
                std::process::id()
            )
        })
        .clone()
}

/// Registers the stdlib helpers and routes `print` to the reporter.
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn("local_run_dir", move || local_run_dir(&r));
    // `utc_timestamp()`: now in UTC as `YYYYMMDDHHMMSS` (release names).
    engine.register_fn("utc_timestamp", || {
        crate::clock::utc_timestamp(std::time::SystemTime::now())
    });
    // `utc_timestamp(seconds)`: the same, `seconds` from now (negative: ago); a time before
    // 1970 or after 9999 (no 14-digit name) is an error, never a name of another time.
    engine.register_fn("utc_timestamp", |seconds: i64| -> Fallible<String> {
        /// 9999-12-31 23:59:59 UTC, in seconds since the epoch.
        const LAST: i64 = 253_402_300_799;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match now
            .checked_add(seconds)
            .filter(|at| (0..=LAST).contains(at))
        {
            Some(at) => Ok(crate::clock::utc_timestamp(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(at as u64),
            )),
            None => Err(format!(
                "utc_timestamp({seconds}): that time is not between 1970 and 9999, the years \
                 a YYYYMMDDHHMMSS timestamp can name"
            )
            .into()),
        }
    });
    // `tether_options()`: the options a follow-up `tether` command needs to reach this run's
    // hosts with its recipe and variables (`-f deploy/shop.rhai -s branch=main`), "" for
    // none; messages that say what to run put them after `tether`.
    let r = rt.clone();
    engine.register_fn("tether_options", move || r.invocation.join(" "));
    // `tether_selection()`: this run's `--roles`, `--hosts` and `--shard`, "" for none.
    let r = rt.clone();
    engine.register_fn("tether_selection", move || r.selection.join(" "));
    // `local_user()`: `user@machine` of whoever runs tether (lock holder, revision log).
    engine.register_fn("local_user", local_user);
    // `fail(message)`: stops the run as a failed step (exit 1, like a failed command), not as
    // a recipe error (exit 4, with a caret). Inside `on(target, |host| ...)` it is that host's
    // failure, its message prefixed with the host's name, as command failures are.
    engine.register_fn("fail", |message: &str| fail_as(message, Kind::Failed));
    // `fail(message, kind)`: the same, of that kind (`err.kind`'s names: a failure caught and
    // raised again with more words keeps its exit code, README's table). Not `interrupted`
    // (an interrupt is never a value) nor `recipe` (a recipe error has a place: `throw`).
    engine.register_fn("fail", |message: &str, kind: &str| -> Fallible<()> {
        match Kind::from_name(kind) {
            Some(k) if !matches!(k, Kind::Interrupted | Kind::Recipe) => fail_as(message, k),
            _ => Err(format!(
                "fail(message, kind): `{kind}` is not a kind a failure can be given: one of \
                 command_failed, connection_lost, unreachable, host_key_refused, config, failed"
            )
            .into()),
        }
    });
    // `reached(host)`: whether this run has had a session to `host`; false when its first
    // connection failed or was stopped (Ctrl-C), so nothing was ever sent to it: no lock of
    // the run can be there (stdlib/deploy.rhai's deploy:failed says so rather than listing
    // it as left behind). True in a dry run, and for a host never asked for.
    let r = rt.clone();
    engine.register_fn("reached", move |host: &str| -> bool {
        r.backend()
            .is_none_or(|b| b.never_connected(host).is_none())
    });
    // `current_host()`: the name of the host whose `on` closure is running on this thread, or
    // `()` outside one. Lazy variables use it to give per-host values (stdlib/deploy.rhai's
    // paths under a `deploy_to` of `~/...`, resolved against each host's home).
    engine.register_fn("current_host", || -> Dynamic {
        context::host_scope().map_or(Dynamic::UNIT, |scope| scope.host.into())
    });
    let r = rt.clone();
    engine.on_print(move |text| {
        r.report_here(EventKind::Print {
            text: crate::secret::mask(text).into_owned(),
        })
    });
    // `debug(x)`: Rhai's own printer writes to stdout, past the reporter (no JSON, no masks).
    let r = rt.clone();
    engine.on_debug(move |text, source, at| {
        // Rhai names no source for code of the recipe itself.
        let file = source.map_or_else(|| r.file.display().to_string(), str::to_string);
        let place = match (at.line(), at.position()) {
            (Some(line), Some(col)) => format!("{file}:{line}:{col}: "),
            _ => format!("{file}: "),
        };
        r.report_here(EventKind::Print {
            text: crate::secret::mask(&format!("debug {place}{text}")).into_owned(),
        })
    });
}

/// `user@machine` for the local user.
fn local_user() -> String {
    let output = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg(if cmd == "id" { "-un" } else { "-s" })
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| output("id"))
        .unwrap_or_else(|| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| output("hostname"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{machine}")
}

/// `fail(message)` of `kind`: inside `on(target, |host| ...)` that host's failure, its message
/// prefixed with the host's name, as command failures are.
fn fail_as(message: &str, kind: Kind) -> Fallible<()> {
    // Said, where the recipe gave no words (stop 44 tester t55: `fail("")` printed `error: `
    // and nothing after).
    let message = if message.trim().is_empty() {
        "fail() was called without a message"
    } else {
        message
    };
    Err(throw(match context::host_scope() {
        Some(scope) => Failure::host(
            &scope.host,
            kind,
            HostText::new().host(&scope.host).text(": ").text(message),
        ),
        None => Failure::new(kind, message),
    }))
}
