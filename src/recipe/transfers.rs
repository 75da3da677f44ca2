//! The host-bound transfers of an `on` closure: `upload` and `download`, their options and
//! paths refused at the call, and their failures as the recipe sees them.

use std::sync::Arc;

use rhai::{Engine, Map};

use super::args::{fail, refuse_nul, Fallible};
use super::commands::{
    backend, host_failure, next_command, scope_for, sudo_password_refused_before, sudo_stdin,
};
use super::context::{self, HostScope, Runtime};
use super::failures::throw;
use crate::backend::{Backend, Download, TransferError, Upload};
use crate::command::CommandContext;
use crate::failure::{Failure, Kind};
use crate::host_text::HostText;
use crate::outcome::failure_text;

/// Registers `upload` and `download`.
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
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

/// The command context the transfer `name` (`upload`, `download`) of `remote` runs in, once
/// neither holds a NUL (no command could carry it) and the transfer (`what`, as failures name
/// it) is its host's next step, with no sudo password refused there before.
fn step_context(
    name: &str,
    remote: &str,
    scope: &HostScope,
    backend: &dyn Backend,
    what: &str,
) -> Fallible<CommandContext> {
    let cctx = context::command_context();
    refuse_nul(&format!("{name}(): the remote path"), remote)?;
    refuse_nul(
        &format!("{name}(): the command context (within, as_user, with_env)"),
        &cctx.render(""),
    )?;
    next_command(scope, what, backend)?;
    if let Some(refused) = sudo_password_refused_before(&cctx, &scope.host) {
        return Err(throw(refused));
    }
    Ok(cctx)
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
    let cctx = step_context("upload", remote, &scope, backend.as_ref(), &what)?;
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
    let cctx = step_context("download", remote, &scope, backend.as_ref(), &what)?;
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
