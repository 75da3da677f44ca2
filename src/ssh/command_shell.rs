//! The shell that runs a command's text on the host: `bash`, wherever the login shell's `PATH`
//! finds one, as Deployer runs every command (its `shell` setting, `bash -ls` by default) and as
//! `ssh` and Capistrano do for a user whose login shell is bash, the usual one: `echo {1..3}`,
//! `echo -e`, `[[ ]]`, `$RANDOM`, `source` and `set -o pipefail` mean what they mean there,
//! whatever the login shell (dash, zsh, fish, csh...). Where the host has no bash (a busybox
//! host, whose login shell is its `sh`), `/bin/sh`. (stop 59: commands always ran under
//! `/bin/sh`, where `echo {1..3}` printed `{1..3}` and `[[ ]]` was a command not found, so an
//! `if [[ ... ]]` was silently false: stop 58 tester t92.)
//!
//! bash runs with `--norc`: Debian's bash reads `~/.bashrc` for a command whose environment
//! says sshd started it (`SSH_CLIENT`) when it is the first bash of the session, which it is
//! under a dash or zsh login shell; what that file prints would come after the start marker,
//! as the command's output. It reads `$BASH_ENV`, as every bash script the command runs does:
//! unset for it, the variable was gone for those scripts too (stop 59 tester t95: Lmod's
//! `module`, which `BASH_ENV` gives bash scripts, was not found), where sshd's own bash reads
//! `~/.bashrc` instead (so a `BASH_ENV` file that prints, or sets `-e`, acts on the command
//! under tether only: stop 59 tester t94). What the login shell's start-up files export
//! reaches the command; what they
//! define without exporting (functions, variables, aliases) does not, where a bash login
//! shell's `ssh host 'cmd'` has them. The command sees `$0` = `bash` (`sh` under `/bin/sh`) and
//! no arguments, as under `ssh host 'cmd'` with that login shell.

/// sh words (for the exec's `/bin/sh`, in a subshell it ends) that, wherever bash is found,
/// run the text in the sh variable `var` by bash, replacing that subshell (`exec`: the
/// command's `$$` is the subshell's pid, its process group the exec's), with `redirect` (sh
/// redirections, may be empty). The words after them run it where there is no bash, by
/// `/bin/sh`. The text is given after a space, so that a command beginning with `-` or `+` is
/// its own words, never bash's options.
pub fn by_bash(var: &str, redirect: &str) -> String {
    format!(
        r#"if command -v bash >/dev/null 2>&1; then exec bash --norc -c " ${var}" bash{redirect}; fi; "#
    )
}

/// The frame the exec's sh with frame key `key` writes before its start marker where the
/// login shell's `PATH` finds no bash: the command runs by `/bin/sh`, which tether says once
/// per host (stop 59 tester t94: `{1..3}` printed as is with nothing said).
fn no_bash_frame(key: &str) -> Vec<u8> {
    format!("\x1etether-nobash:{key}\x1e").into_bytes()
}

/// sh words that write [`no_bash_frame`] (keyed `$_tether_key`) where bash is not found: on
/// stdout with `pty` (a terminal carries both streams), else on stderr.
pub fn say_no_bash(pty: bool) -> String {
    let to = if pty { "" } else { " >&2" };
    format!(
        r#"command -v bash >/dev/null 2>&1 || printf "\036tether-nobash:%s\036" "$_tether_key"{to};"#
    )
}

/// Removes [`no_bash_frame`] for `key` from `bytes` (what came before a start marker); says
/// whether it was there.
pub fn cut_no_bash(bytes: &mut Vec<u8>, key: &str) -> bool {
    let frame = no_bash_frame(key);
    match bytes
        .windows(frame.len())
        .position(|w| w == frame.as_slice())
    {
        Some(at) => {
            bytes.drain(at..at + frame.len());
            true
        }
        None => false,
    }
}
