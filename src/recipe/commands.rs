//! The host-bound commands of an `on` closure: `run`, `capture`, `test`, `upload`, `download`,
//! the command context they run in (`within`, `with_env`, `as_user`), and `run_locally`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext};

use super::args::{fail, refuse_empty, refuse_nul, Fallible};
use super::context::{self, HostScope, Runtime, StoppedEarly};
use super::failures::throw;
use crate::backend::{Backend, Call, Download, TransferError, Upload};
use crate::command::CommandContext;
use crate::failure::{Failure, Kind};
use crate::host_text::HostText;
use crate::outcome::{failure_text, StoppedHow};
use crate::ssh::exec::{ExecOutput, ExitStatus};
use crate::ssh::SshError;
use crate::stop::{Stop, StopReason};
use crate::sudo::{self, Refusal};

/// The backend of the running tasks; Err names `what` when called outside a task.
pub fn backend(rt: &Runtime, what: &str) -> Fallible<Arc<dyn Backend>> {
    rt.backend()
        .ok_or_else(|| format!("{what} can only be used inside a task").into())
}

/// Registers the host-bound commands and the command context functions.
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn("run", move |cmd: &str| -> Fallible<()> {
        host_exec(&r, cmd, Mode::Run).map(|_| ())
    });
    let r = rt.clone();
    engine.register_fn("capture", move |cmd: &str| -> Fallible<String> {
        host_exec(&r, cmd, Mode::Capture).map(|d| d.to_string())
    });
    // SSHKit's `capture(cmd, strip: false)`: the output with its last line end removed
    // (`chomp`), its leading blanks kept (stop 47 tester t63: indented YAML lost its first
    // line's indentation, and the option was Rhai's "Function not found").
    let r = rt.clone();
    engine.register_fn("capture", move |cmd: &str, opts: Map| -> Fallible<String> {
        if let Some(key) = opts.keys().find(|k| k.as_str() != "strip") {
            return fail(format!("capture(): unknown option `{key}` (known: strip)"));
        }
        let strip = match opts.get("strip") {
            None => true,
            Some(v) => v
                .as_bool()
                .map_err(|_| format!("capture() option `strip` must be true or false, not {v}"))?,
        };
        let mode = if strip {
            Mode::Capture
        } else {
            Mode::CaptureChomped
        };
        host_exec(&r, cmd, mode).map(|d| d.to_string())
    });
    let r = rt.clone();
    engine.register_fn("test", move |cmd: &str| -> Fallible<bool> {
        host_exec(&r, cmd, Mode::Test).map(|d| d.as_bool().unwrap_or(false))
    });
    engine.register_fn("within", within);
    // A number (`-s dir=123`, which `fetch` gives as typed) names the directory it spells.
    engine.register_fn("within", |ctx: NativeCallContext, dir: i64, f: FnPtr| {
        within(ctx, &dir.to_string(), f)
    });
    engine.register_fn("with_env", |ctx: NativeCallContext, vars: Map, f: FnPtr| {
        // A value is text, a number or a boolean, as it prints; `()` (a variable never set)
        // was exported as "" (stop 42 tester t45), an array or a map as Rhai writes it.
        for (k, v) in &vars {
            if v.is_unit() {
                return fail(format!(
                    "with_env: `{k}` has no value, `()` (a variable never set?): give it a \
                     string, number or boolean (\"\" for an empty one)"
                ));
            }
            if !(v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char()) {
                return fail(format!(
                    "with_env: `{k}` must be a string, number or boolean, not {} ({v})",
                    v.type_name()
                ));
            }
        }
        let pairs: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((bad, _)) = pairs.iter().find(|(k, _)| !valid_env_name(k)) {
            return fail(format!(
                "with_env: `{bad}` is not a valid environment variable name"
            ));
        }
        let inner = context::command_context().with_env(&pairs);
        context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
    });
    engine.register_fn("as_user", as_user);
    // A number (`-s user=101`) is the user of that name, as sudo -u reads it (`#101` is the
    // user id).
    engine.register_fn("as_user", |ctx: NativeCallContext, user: i64, f: FnPtr| {
        as_user(ctx, &user.to_string(), f)
    });
    let r = rt.clone();
    engine.register_fn("upload", move |local: &str, remote: &str| {
        upload(&r, local, remote, &Map::new())
    });
    let r = rt.clone();
    engine.register_fn("upload", move |local: &str, remote: &str, opts: Map| {
        upload(&r, local, remote, &opts)
    });
    let r = rt.clone();
    engine.register_fn("download", move |remote: &str, local: &str| {
        download(&r, remote, local, &Map::new())
    });
    let r = rt.clone();
    engine.register_fn("download", move |remote: &str, local: &str, opts: Map| {
        download(&r, remote, local, &opts)
    });
    let r = rt.clone();
    engine.register_fn("run_locally", move |cmd: &str| -> Fallible<String> {
        refuse_local_command(cmd)?;
        let backend = backend(&r, "run_locally()")?;
        if r.interrupted() {
            return Err(throw(Failure::interrupted()));
        }
        // In a host's closure: nothing past the step another host failed at, local commands
        // included (see `StepAbort::wait_locally`).
        if let Some(scope) = context::host_scope() {
            let started = scope.commands.load(std::sync::atomic::Ordering::SeqCst);
            scope.wait_locally(started);
            if let Some(because) = scope.stops(started) {
                return Err(stopped_early(&scope, cmd, StoppedHow::Before, because));
            }
        }
        backend.run_locally(cmd, &r.dir()).map_err(|f| throw(*f))
    });
}

/// The longest argument a program may be given on Linux (`MAX_ARG_STRLEN`, with its NUL):
/// `run_locally`'s command is one, `sh -c`'s.
const MAX_ARG: usize = 128 * 1024;

/// Refuses, at the call, a `run_locally` command that could not run as written, as `run`
/// refuses its (stop 42 tester t45: a NUL byte or a command over [`MAX_ARG`] failed the run,
/// exit 1, naming no line; `""` succeeded, running nothing); and one inside `within`,
/// `with_env` or `as_user`, which name the hosts' directories, environment and users, and
/// which it would otherwise ignore without a word.
fn refuse_local_command(cmd: &str) -> Fallible<()> {
    refuse_empty("run_locally(): the command", cmd)?;
    refuse_nul("run_locally(): the command", cmd)?;
    // With the space it is run after (see `backend::run_locally`) and the NUL.
    if cmd.len() + 2 > MAX_ARG {
        return fail(format!(
            "run_locally(): the command is {} bytes, over the {} KiB one argument of a program \
             may have (sh -c takes it as one): write it to a script file and run that",
            cmd.len(),
            MAX_ARG / 1024
        ));
    }
    let cctx = context::command_context();
    let mut inside = Vec::new();
    if cctx.dir.is_some() {
        inside.push("within");
    }
    if !cctx.env.is_empty() {
        inside.push("with_env");
    }
    if cctx.user.is_some() {
        inside.push("as_user");
    }
    if !inside.is_empty() {
        return fail(format!(
            "run_locally() inside {}: those apply to the host's commands (run, capture, \
             test, upload, download); run_locally runs on this machine, in the recipe's \
             directory, as you: call it outside them (or write `cd DIR &&` or `VAR=value` \
             into its command)",
            inside.join(", ")
        ));
    }
    Ok(())
}

/// `within(dir, closure)`: the closure's commands run in `dir` (see
/// [`CommandContext::within`]).
fn within(ctx: NativeCallContext, dir: &str, f: FnPtr) -> Fallible<Dynamic> {
    // `cd ''` leaves the shell where it is (the login directory): the commands would run
    // elsewhere than asked, with status 0.
    if dir.is_empty() {
        return fail("within: the directory is empty (a variable that was never set?)");
    }
    // `~user` would be user's home to a shell, but is quoted (a directory of that name), and
    // nested it was taken for an absolute path (stop 41 tester t37: `within("/srv", ||
    // within("~foo/..", ..))` ran in the login directory): said, as for transfers.
    if crate::command::names_other_home(dir) {
        return fail(format!(
            "within: the directory `{dir}`: only `~` and `~/` are expanded (to the remote \
             $HOME); give another user's home as an absolute path, or `./{dir}` for a \
             directory of that name"
        ));
    }
    let inner = context::command_context().within(dir);
    context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
}

/// `as_user(user, closure)`: the closure's commands run as `user` through sudo (see
/// [`CommandContext::as_user`]).
fn as_user(ctx: NativeCallContext, user: &str, f: FnPtr) -> Fallible<Dynamic> {
    if user.is_empty() {
        return fail("as_user: the user name is empty");
    }
    let inner = context::command_context()
        .as_user(user)
        .with_sudo_password(crate::secret::sudo_password().is_some());
    context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The stdin of a command in context `ctx`: `data`, after the sudo password line when the
/// command was rendered to read it (`as_user` with a sudo password).
pub fn sudo_stdin(ctx: &CommandContext, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let password = crate::secret::sudo_password().filter(|_| ctx.needs_sudo_password());
    match password {
        Some(p) => {
            let mut stdin = format!("{p}\n").into_bytes();
            stdin.extend(data.unwrap_or_default());
            Some(stdin)
        }
        None => data,
    }
}

/// A hint when an `as_user` command on `host` failed because sudo refused it (a password
/// wanted or refused, a terminal required); a refused password is remembered, so that it is
/// not offered to that host again (see [`crate::sudo`]).
pub fn sudo_hint(
    ctx: &CommandContext,
    host: &str,
    result: Option<&Result<ExecOutput, SshError>>,
) -> Option<String> {
    let user = ctx.user.as_deref()?;
    let out = match result? {
        Ok(out) if !out.status.success() => out,
        _ => return None,
    };
    let refusal = sudo::refusal(&out.stdout, &out.stderr)?;
    if refusal == Refusal::PasswordRefused && ctx.needs_sudo_password() {
        sudo::note_refused(host);
    }
    Some(refusal.hint(user))
}

/// Err when `ctx` would offer the sudo password to `host`, where sudo refused it before.
pub fn sudo_password_refused_before(ctx: &CommandContext, host: &str) -> Option<Failure> {
    let user = ctx.user.as_deref().filter(|_| ctx.needs_sudo_password())?;
    sudo::refused_before(host).then(|| {
        Failure::host(
            host,
            Kind::CommandFailed,
            sudo::not_offered_again(host, user),
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    /// stdout, trimmed at both ends (SSHKit's `capture`).
    Capture,
    /// stdout without its last line end (SSHKit's `capture(cmd, strip: false)`).
    CaptureChomped,
    Test,
}

/// The host scope of the calling closure; Err tells `what` needs one.
fn scope_for(what: &str) -> Fallible<HostScope> {
    context::host_scope().ok_or_else(|| {
        format!("{what} needs a host: call it inside on(target, |host| {{ ... }})").into()
    })
}

/// Numbers the next command of the host and refuses it (a [`StoppedEarly`] value) when another
/// host of the same `on` failed at an earlier step; its number (from 0) otherwise. A host
/// that never connected fails with why instead, whichever failure came first, so the same
/// run says the same.
fn next_command(scope: &HostScope, command: &str, backend: &dyn Backend) -> Fallible<usize> {
    let index = scope
        .commands
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    scope.reach(index);
    match scope.stops(index) {
        Some(because) => Err(match backend.never_connected(&scope.host) {
            Some(e) => throw(Failure::host(
                &scope.host,
                e.kind(),
                failure_text(&scope.host, command, &Err(e)),
            )),
            None => stopped_early(scope, command, StoppedHow::Before, because),
        }),
        None => Ok(index),
    }
}

/// Numbers a nested `on` of a host's closure as the host's next step, and refuses it (a
/// [`StoppedEarly`], `what` its command or `on(...)`) when another host of the enclosing
/// `on` failed at an earlier step, as [`next_command`] refuses a command (stop 46 tester t61:
/// a host's closure went on through nested steps on other hosts after its step was aborted).
/// Returns what stops the nested `on`'s commands while they run (see [`HostScope::stop_for`]).
pub(super) fn refuse_stopped_step(scope: &HostScope, what: &str) -> Fallible<Stop> {
    let index = scope
        .commands
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    scope.reach(index);
    match scope.stops(index) {
        Some(because) => Err(stopped_early(scope, what, StoppedHow::Before, because)),
        None => Ok(scope.stop_for(index)),
    }
}

/// The [`StoppedEarly`] value a nested `on` (`what`) throws in `scope`'s closure when the
/// enclosing step's stop (`because` failed) stopped its hosts (`inner`: none failed of its
/// own): the host is stopped early, as by a command of its own, not failed.
pub(super) fn stopped_within(
    scope: &HostScope,
    what: &str,
    because: String,
    inner: &Failure,
) -> Box<rhai::EvalAltResult> {
    throw_stopped(
        scope,
        StoppedEarly {
            command: what.to_string(),
            how: StoppedHow::Within,
            because,
            within: inner.said().to_string(),
        },
    )
}

/// Keeps `stopped` as `scope`'s host's stop (its first only) and throws it.
fn throw_stopped(scope: &HostScope, stopped: StoppedEarly) -> Box<rhai::EvalAltResult> {
    scope.note_stopped(&stopped);
    rhai::EvalAltResult::ErrorRuntime(Dynamic::from(stopped), rhai::Position::NONE).into()
}

/// The [`StoppedEarly`] value a host-bound call throws: `command` was not run (or was stopped
/// while it ran, `how`) because `because` failed; the host's first stop is kept in its scope.
fn stopped_early(
    scope: &HostScope,
    command: &str,
    how: StoppedHow,
    because: String,
) -> Box<rhai::EvalAltResult> {
    throw_stopped(
        scope,
        StoppedEarly {
            command: command.to_string(),
            how,
            because,
            within: String::new(),
        },
    )
}

/// The failure a host-bound call throws when its command failed: the host, command, status
/// and stderr tail, a sudo hint where one applies.
fn host_failure(
    scope: &HostScope,
    cctx: &CommandContext,
    command: &str,
    result: Result<ExecOutput, SshError>,
) -> Box<rhai::EvalAltResult> {
    let kind = match &result {
        Err(e) => e.kind(),
        Ok(_) => Kind::CommandFailed,
    };
    let hint = sudo_hint(cctx, &scope.host, Some(&result));
    let mut message = failure_text(&scope.host, command, &result);
    if let Some(hint) = hint {
        message.push_str(&format!("\n  hint: {hint}"));
    }
    throw(Failure::host(&scope.host, kind, message))
}

fn host_exec(rt: &Runtime, cmd: &str, mode: Mode) -> Fallible<Dynamic> {
    let name = match mode {
        Mode::Run => "run()",
        Mode::Capture | Mode::CaptureChomped => "capture()",
        Mode::Test => "test()",
    };
    let scope = scope_for(name)?;
    let backend = backend(rt, name)?;
    if rt.interrupted() {
        return Err(throw(Failure::interrupted()));
    }
    refuse_empty(&format!("{name}: the command"), cmd)?;
    let cctx = context::command_context();
    let command = cctx.render(cmd);
    refuse_nul(&format!("{name}: the command"), &command)?;
    let index = next_command(&scope, &command, backend.as_ref())?;
    if let Some(refused) = sudo_password_refused_before(&cctx, &scope.host) {
        return Err(throw(refused));
    }
    let call = Call {
        stdin: sudo_stdin(&cctx, None),
        timeout: scope.timeout,
        reattach: scope.reattach,
        quiet: matches!(mode, Mode::Capture | Mode::CaptureChomped),
        pty: scope.pty,
        stop: scope.stop_for(index),
    };
    let out = match backend.exec(&scope.host, &command, call) {
        Ok(out) if out.status.success() => out,
        // Stopped because another host of the step failed: stopped early, not failed.
        Err(SshError::CommandStopped {
            why: StopReason::StepAborted { because },
            elapsed,
            reach,
            ..
        }) => {
            let how = match elapsed {
                Some(_) => StoppedHow::during(reach),
                None => StoppedHow::Before,
            };
            return Err(stopped_early(&scope, &command, how, because));
        }
        // A condition that does not hold; but sudo refusing to run it under `as_user` is no
        // answer, and fails as `run` does, with its hint.
        Ok(out)
            if mode == Mode::Test
                && matches!(out.status, ExitStatus::Code(_))
                && (cctx.user.is_none() || sudo::refusal(&out.stdout, &out.stderr).is_none()) =>
        {
            // Nor is a `within` directory that cannot be entered (the `cd` fails the same
            // way): asked again, alone, as SSHKit's `within` checks its directory first.
            if let Some(dir) = &cctx.dir {
                let check = CommandContext {
                    dir: Some(dir.clone()),
                    ..CommandContext::default()
                }
                .render(":");
                let call = Call {
                    stdin: None,
                    timeout: scope.timeout,
                    reattach: scope.reattach,
                    quiet: true,
                    pty: false,
                    stop: scope.stop_for(index),
                };
                let entered = backend.exec(&scope.host, &check, call);
                if !matches!(&entered, Ok(o) if o.status.success()) {
                    let kind = match &entered {
                        Err(e) => e.kind(),
                        Ok(_) => Kind::CommandFailed,
                    };
                    let message = failure_text(&scope.host, &check, &entered).text(&format!(
                        "\n  test(): `{cmd}` answered no, and within(\"{}\") cannot be \
                         entered: the answer is not known (its `cd` may be what failed)",
                        dir.escape_debug()
                    ));
                    return Err(throw(Failure::host(&scope.host, kind, message)));
                }
            }
            return Ok(false.into());
        }
        other => return Err(host_failure(&scope, &cctx, &command, other)),
    };
    Ok(match mode {
        Mode::Run => Dynamic::UNIT,
        Mode::Capture => String::from_utf8_lossy(&out.stdout)
            .trim()
            .to_string()
            .into(),
        Mode::CaptureChomped => {
            let text = String::from_utf8_lossy(&out.stdout);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_string().into()
        }
        Mode::Test => true.into(),
    })
}

/// `#{ mode: "0640" }`, the options of `upload` and `download` (`what`): the destination's
/// permission bits, or None (keep the source's).
fn transfer_mode(opts: &Map, what: &str) -> Fallible<Option<u32>> {
    if let Some(key) = opts.keys().find(|k| k.as_str() != "mode") {
        return fail(format!("{what}: unknown option `{key}` (known: mode)"));
    }
    let Some(value) = opts.get("mode") else {
        return Ok(None);
    };
    let Some(text) = value.read_lock::<rhai::ImmutableString>() else {
        return fail(format!(
            "{what}: mode must be a string of octal digits, like \"0640\", not {} (a number \
             such as 0640 would be read as decimal)",
            value.type_name()
        ));
    };
    crate::transfer::scripts::parse_mode(&text)
        .map(Some)
        .map_err(|e| format!("{what}: {e}").into())
}

/// The failure a transfer throws: a local file that cannot be read, or a local path that
/// cannot be one, is a recipe error; a remote command that failed (named by `what`, the call
/// as the recipe made it), a download that arrived changed, or one whose local file could not
/// be written (a full or read-only disk), fails the host.
fn transfer_failure(
    scope: &HostScope,
    cctx: &CommandContext,
    what: &str,
    error: TransferError,
) -> Box<rhai::EvalAltResult> {
    match error {
        TransferError::Local(text) => text.into(),
        // Named as the recipe asked for it (`upload a -> b`), not as the internal script
        // sent; the status and stderr tail are the script's.
        TransferError::Remote { result, .. } => {
            host_failure(scope, cctx, what, result.map_err(|e| e.naming(what)))
        }
        // Failed as stopped, with the destination said as it is (tester t121: a timeout
        // that came as the file was moved into place said nothing of it, "nothing placed").
        TransferError::Placed(error) => {
            let kind = error.kind();
            let mut message = failure_text(&scope.host, what, &Err((*error).naming(what)));
            message.push_str(
                "; the file had been moved into place before the stop reached the host: the \
                 destination is the uploaded file",
            );
            throw(Failure::host(&scope.host, kind, message))
        }
        TransferError::Changed(text) | TransferError::LocalWrite(text) => throw(Failure::host(
            &scope.host,
            Kind::CommandFailed,
            HostText::new().host(&scope.host).text(": ").text(&text),
        )),
    }
}

/// `upload(local, remote[, #{ mode }])`: see [`Backend::upload`] and [`crate::transfer`]; the
/// destination gets the local file's permission bits (as `scp -p` and rsync do) or `mode`.
fn upload(rt: &Runtime, local: &str, remote: &str, opts: &Map) -> Fallible<()> {
    if local.is_empty() || remote.is_empty() {
        return fail("upload: a path is empty (upload(local, remote))");
    }
    let mode = transfer_mode(opts, "upload")?;
    crate::transfer::paths::refuse_local_tilde(local).map_err(|e| format!("upload: {e}"))?;
    crate::transfer::paths::refuse_other_home(remote).map_err(|e| format!("upload: {e}"))?;
    crate::transfer::paths::refuse_directory_form(remote).map_err(|e| format!("upload: {e}"))?;
    crate::transfer::paths::refuse_overlong(remote, "remote")
        .map_err(|e| format!("upload: {e}"))?;
    let scope = scope_for("upload()")?;
    let backend = backend(rt, "upload()")?;
    if rt.interrupted() {
        return Err(throw(Failure::interrupted()));
    }
    let path = rt.dir().join(local);
    let what = crate::transfer::paths::label("upload", local, remote);
    let cctx = context::command_context();
    refuse_nul("upload(): the remote path", remote)?;
    refuse_nul(
        "upload(): the command context (within, as_user, with_env)",
        &cctx.render(""),
    )?;
    next_command(&scope, &what, backend.as_ref())?;
    if let Some(refused) = sudo_password_refused_before(&cctx, &scope.host) {
        return Err(throw(refused));
    }
    let render = |script: &str| cctx.render(script);
    let upload = Upload {
        path: &path,
        local,
        remote,
        mode,
        render: &render,
        stdin_prefix: sudo_stdin(&cctx, None),
        timeout: scope.timeout,
    };
    backend
        .upload(&scope.host, &upload)
        .map_err(|e| transfer_failure(&scope, &cctx, &what, e))
}

/// Refuses to put `host`'s name in the local path `local` for its `{host}` where the name would
/// not be one component of it: with a `/` (an ssh config `Host` may hold one, and so does an
/// `ssh://` name), `.` or `..`, the file would land outside the directory the recipe named
/// (stop 41 tester t37: `x/../../../esc` wrote above the recipe's directory, exit 0).
fn refuse_host_in_path(host: &str, local: &str) -> Fallible<()> {
    // `~` would make the path the local `~` transfers refuse (stop 41 tester t40: a host
    // named `~` wrote `./~/f.txt`).
    if host.contains('/')
        || host == "."
        || host == ".."
        || (local.starts_with("{host}") && host.starts_with('~'))
    {
        return fail(format!(
            "download: {{host}} in {local} would be {host:?}, which is no single file name (a \
             `/`, `.` or `..` would put the file elsewhere than the path names, and a leading \
             `~` makes a local path tether refuses): name the server without them, or give the \
             local path without {{host}}"
        ));
    }
    Ok(())
}

/// Refuses a download onto a file this run writes or reads, `path` (`local` as written): its
/// log (`log_file`) and the log's `.1`, which the file would be renamed over (stop 42 tester
/// t43: the log held only the downloaded file, exit 0), the recipe and the files it loaded
/// (stage files, modules: `tether watch` reads them again), the files ssh reads for this run
/// ([`SshConfig::files_in_use`](crate::ssh::config::SshConfig::files_in_use): the config and
/// its Includes, known_hosts, identity files) (stop 42 testers t46, t49: each was replaced,
/// exit 0), and the tether program. The same file by any name (a link, `..`, a bind mount),
/// and a `.1` not made yet by its name.
fn refuse_own_files(rt: &Runtime, local: &str, path: &std::path::Path) -> Fallible<()> {
    use std::path::{Path, PathBuf};
    let mut own: Vec<(PathBuf, String)> = Vec::new();
    let log_file = rt.recipe().vars.get("log_file").cloned();
    if let Ok(Some(log)) = super::runtime_vars::log_file(log_file.as_ref(), &rt.dir()) {
        let mut rotated = log.clone().into_os_string();
        rotated.push(".1");
        own.push((log, "this run's log (log_file)".into()));
        own.push((
            rotated.into(),
            "the run log's previous run (log_file's .1)".into(),
        ));
    }
    for name in rt.sources.names() {
        if Path::new(&name).exists() {
            own.push((
                name.into(),
                "a file of this recipe (the recipe, a stage file, a module)".into(),
            ));
        }
    }
    // What the ssh config layer read and names, not a guess at it (stop 42 tester t49:
    // ~/.ssh/config, an Include, known_hosts, an IdentityFile were replaced).
    if let Some(config) = rt.ssh_config() {
        own.extend(config.files_in_use());
    }
    own.extend(rt.own_files.iter().cloned());
    // Where this run's output goes (stop 43 tester t51: `> out.txt` with `dst=out.txt` left the
    // file holding the download and the run's output unlinked, exit 0).
    for (fd, what) in [(1, "stdout"), (2, "stderr")] {
        if let Ok(file) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            own.push((file, format!("where this run's {what} goes")));
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        own.push((exe, "the tether program this run is".into()));
    }
    for (file, what) in own {
        if same_place(path, &file) {
            return fail(format!(
                "download: {local} is {what}, {}: the file would take its place; download \
                 elsewhere",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Whether `a` and `b` are one file: one device and inode where both exist, else one name in
/// one directory, the directory by its device and inode (a link or a bind mount to it is it:
/// stop 42 tester t49, `bm/tether.log.1` through a bind mount of `log/`).
fn same_place(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (x.dev(), x.ino()) == (y.dev(), y.ino());
    }
    let place = |p: &std::path::Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let m = std::fs::metadata(dir).ok()?;
        Some(((m.dev(), m.ino()), p.file_name()?.to_owned()))
    };
    match (place(a), place(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `download(remote, local[, #{ mode }])`: see [`Backend::download`]. `local` is relative to
/// the recipe, and `{host}` in it becomes the host's name; an `on` over several hosts must use
/// it (every host would write the same file, the last one winning, as SSHKit's `download!`
/// does). The destination gets the remote file's permission bits, or `mode`.
fn download(rt: &Runtime, remote: &str, local: &str, opts: &Map) -> Fallible<()> {
    if local.is_empty() || remote.is_empty() {
        return fail("download: a path is empty (download(remote, local))");
    }
    let mode = transfer_mode(opts, "download")?;
    crate::transfer::paths::refuse_local_tilde(local).map_err(|e| format!("download: {e}"))?;
    crate::transfer::paths::refuse_other_home(remote).map_err(|e| format!("download: {e}"))?;
    crate::transfer::paths::refuse_directory_form(local).map_err(|e| format!("download: {e}"))?;
    crate::transfer::paths::refuse_overlong(local, "local")
        .map_err(|e| format!("download: {e}"))?;
    let scope = scope_for("download()")?;
    if scope.hosts > 1 && !local.contains("{host}") {
        return fail(format!(
            "download: this on() runs on {} hosts, and each would write {local}: put {{host}} \
             in the local path (\"logs/{{host}}.log\") or download on one host",
            scope.hosts
        ));
    }
    let backend = backend(rt, "download()")?;
    if rt.interrupted() {
        return Err(throw(Failure::interrupted()));
    }
    if local.contains("{host}") {
        refuse_host_in_path(&scope.host, local)?;
    }
    let local = local.replace("{host}", &scope.host);
    let path = rt.dir().join(&local);
    refuse_own_files(rt, &local, &path)?;
    let what = crate::transfer::paths::label("download", remote, &local);
    let cctx = context::command_context();
    refuse_nul("download(): the remote path", remote)?;
    refuse_nul(
        "download(): the command context (within, as_user, with_env)",
        &cctx.render(""),
    )?;
    next_command(&scope, &what, backend.as_ref())?;
    if let Some(refused) = sudo_password_refused_before(&cctx, &scope.host) {
        return Err(throw(refused));
    }
    let render = |script: &str| cctx.render(script);
    let download = Download {
        remote,
        local: &local,
        path: &path,
        mode,
        render: &render,
        stdin_prefix: sudo_stdin(&cctx, None),
        timeout: scope.timeout,
    };
    backend
        .download(&scope.host, &download)
        .map_err(|e| transfer_failure(&scope, &cctx, &what, e))
}

#[cfg(test)]
mod tests {
    use super::same_place;

    /// One file by any name: a link, `..`, a second name of its directory; where it is not
    /// there yet, by its name in its directory, that directory however reached (stop 42 tester
    /// t49: a bind mount of `log/` reached a `.1` not made yet).
    #[test]
    fn one_file_by_any_name_is_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("log")).unwrap();
        std::fs::write(d.join("log/tether.log"), "x").unwrap();
        std::os::unix::fs::symlink("log", d.join("lnk")).unwrap();
        std::os::unix::fs::symlink("log/tether.log", d.join("file-link")).unwrap();
        let log = d.join("log/tether.log");
        let rotated = d.join("log/tether.log.1");
        for same in ["lnk/tether.log", "file-link", "log/../log/tether.log"] {
            assert!(same_place(&d.join(same), &log), "{same}");
        }
        for same in ["lnk/tether.log.1", "log/../lnk/tether.log.1"] {
            assert!(same_place(&d.join(same), &rotated), "{same}");
        }
        for other in ["log/tether.log.2", "tether.log.1", "lnk/other"] {
            assert!(!same_place(&d.join(other), &rotated), "{other}");
            assert!(!same_place(&d.join(other), &log), "{other}");
        }
    }
}
