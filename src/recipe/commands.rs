//! The host-bound commands of an `on` closure: `run`, `capture`, `test` (`upload` and
//! `download` are `transfers.rs`), the command context they run in (`within`, `with_env`,
//! `as_user`), and `run_locally`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext};

use super::args::{fail, refuse_empty, refuse_nul, Fallible};
use super::context::{self, HostScope, Runtime, StoppedEarly};
use super::failures::throw;
use crate::backend::{Backend, Call};
use crate::command::CommandContext;
use crate::failure::{Failure, Kind};
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

/// Refuses, for a command in context `ctx` on a pseudo-terminal (`pty`), a sudo password the
/// terminal would change before sudo reads it (see
/// [`crate::secret::sudo_password_changed_on_terminal`]): sudo would read another password and
/// count a failed attempt toward an account lock. Without a terminal, sudo's askpass reads it
/// as given. The error does not say which character.
pub fn refuse_password_on_terminal(ctx: &CommandContext, pty: bool) -> Fallible<()> {
    let changed =
        pty && ctx.needs_sudo_password() && crate::secret::sudo_password_changed_on_terminal();
    match changed {
        true => fail(
            "the sudo password holds a control character that this command's pseudo-terminal \
             takes as a key (erase, kill the line, interrupt, end of input...): sudo would read \
             another password, and a wrong one counts toward an account lock; run this step \
             without a pty (sudo then reads the password as given), or use a password without \
             control characters",
        ),
        false => Ok(()),
    }
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
pub fn scope_for(what: &str) -> Fallible<HostScope> {
    context::host_scope().ok_or_else(|| {
        format!("{what} needs a host: call it inside on(target, |host| {{ ... }})").into()
    })
}

/// Numbers the next command of the host and refuses it (a [`StoppedEarly`] value) when another
/// host of the same `on` failed at an earlier step; its number (from 0) otherwise. A host
/// that never connected fails with why instead, whichever failure came first, so the same
/// run says the same.
pub fn next_command(scope: &HostScope, command: &str, backend: &dyn Backend) -> Fallible<usize> {
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
pub fn host_failure(
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
    refuse_password_on_terminal(&cctx, scope.pty)?;
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
