//! The command model: a shell command plus the context it runs in (directory, environment,
//! user), rendered as one POSIX shell string with correct quoting.

/// Where tether's own scripts on a host (the supervisor, a re-attach, a stop, the clean-up,
/// a transfer, the reading of sshd's config) look for their programs (`dd`, `cat`, `mv`,
/// `sha256sum`, `sudo` ...) before the login shell's `PATH`: a program of the user's of the
/// same name first in `PATH` (a `~/bin/cat` that is `bat`, an `rm` that moves files to a
/// trash, a broken one) does not carry a command's output, its files, its stop or a transfer
/// (stop 60 tester t96: a `cat` that copied nothing lost a command's output and the run said
/// `ok`; stop 61 tester t98: a `cat` that adds a line made an upload "stopped short: 200033
/// of 200000 bytes"). The user's command itself runs with the login shell's `PATH`, as ssh
/// runs it.
pub const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// The sh words that put [`SYSTEM_PATH`] before `PATH` for the rest of a script of tether's
/// own (no trailing colon, the current directory, where `PATH` is empty).
pub fn system_programs_first() -> String {
    format!("PATH={SYSTEM_PATH}${{PATH:+:$PATH}}; ")
}

/// Quotes `s` for a POSIX shell: unchanged when it is made only of safe characters, else in
/// single quotes with embedded single quotes as `'\''`.
pub fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where and how a command runs; nests like Capistrano's `within`, `with`, `as`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandContext {
    /// Working directory (`within`); relative directories nest onto the outer one.
    pub dir: Option<String>,
    /// Environment variables (`with_env`), inner values override outer ones.
    pub env: Vec<(String, String)>,
    /// Run as this user through `sudo -n` (`as_user`).
    pub user: Option<String>,
    /// `user` through `sudo -A` with the sudo password that tether writes as the first line of
    /// the command's stdin (see [`CommandContext::render`]), instead of `sudo -n`.
    pub sudo_askpass: bool,
}

impl CommandContext {
    /// This context with `dir` as working directory: relative to the current one, unless it
    /// begins with `/`, or is `~` or begins with `~/` (the home, as [`quote_path`] leaves it to
    /// the shell); `~user` is quoted, a directory of that name, and so relative too.
    pub fn within(&self, dir: &str) -> Self {
        let dir = match &self.dir {
            Some(outer) if !dir.starts_with('/') && !at_home(dir) => {
                format!("{}/{dir}", outer.trim_end_matches('/'))
            }
            _ => dir.to_string(),
        };
        CommandContext {
            dir: Some(dir),
            ..self.clone()
        }
    }

    /// This context with extra environment variables.
    pub fn with_env(&self, vars: &[(String, String)]) -> Self {
        let mut env = self.env.clone();
        for (k, v) in vars {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        CommandContext {
            env,
            ..self.clone()
        }
    }

    /// This context running as `user`.
    pub fn as_user(&self, user: &str) -> Self {
        CommandContext {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    /// This context with (or without) a sudo password for `as_user`.
    pub fn with_sudo_password(&self, on: bool) -> Self {
        CommandContext {
            sudo_askpass: on,
            ..self.clone()
        }
    }

    /// Whether the rendered command reads the sudo password as the first line of its stdin.
    pub fn needs_sudo_password(&self) -> bool {
        self.user.is_some() && self.sudo_askpass
    }

    /// The shell string for `command` in this context.
    ///
    /// As another user: `sudo -n -u USER -- [env K=V] sh -c 'command'`, which fails at once
    /// if sudo wants a password (a command over 96 KiB goes to that `sh` in several
    /// arguments: Linux refuses a longer one). With [`sudo_askpass`](CommandContext::sudo_askpass), a
    /// wrapper reads the password from the first line of stdin (never from the command line,
    /// which `ps` shows), writes an askpass helper in a private temporary directory that
    /// prints it from the environment, and runs `sudo -A`: sudo asks the helper only if it
    /// needs a password, so with NOPASSWD the password goes nowhere, and the rest of stdin (an
    /// upload) reaches the command untouched, which `sudo -S` cannot promise. The helper
    /// answers once: when sudo asks again (it refused the password, and would retry up to
    /// `passwd_tries`, 3 by default), it gets nothing and gives up, so a wrong password costs
    /// one failed attempt, not three (an account lock under `pam_faillock`). The variable is
    /// removed from the command's environment.
    pub fn render(&self, command: &str) -> String {
        let mut out = String::new();
        if let Some(dir) = &self.dir {
            out.push_str(&format!("cd {} && ", quote_path(dir)));
        }
        let assignments: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        match &self.user {
            Some(user) if self.sudo_askpass => {
                let env = if assignments.is_empty() {
                    String::new()
                } else {
                    format!("{} ", assignments.join(" "))
                };
                // The helper marks its first answer with a file beside itself; asked again,
                // it answers nothing (sudo then stops: "no password was provided").
                out.push_str(&format!(
                    "{{ IFS= read -r TETHER_SUDO_PW; export TETHER_SUDO_PW; \
                     if d=$(mktemp -d); then \
                     printf '%s\\n' '#!/bin/sh' '[ -e \"${{0%/*}}/asked\" ] && exit 1' \
                     ': >\"${{0%/*}}/asked\"' 'printf \"%s\\n\" \"$TETHER_SUDO_PW\"' >\"$d/askpass\" \
                     && chmod 700 \"$d/askpass\" \
                     && SUDO_ASKPASS=\"$d/askpass\" sudo -A -u {} -- env -u TETHER_SUDO_PW {env}{}; \
                     s=$?; rm -rf \"$d\"; (exit \"$s\"); else (exit 125); fi; }}",
                    quote(user),
                    sh_c(command)
                ));
            }
            Some(user) => {
                out.push_str(&format!("sudo -n -u {} -- ", quote(user)));
                if !assignments.is_empty() {
                    out.push_str(&format!("env {} ", assignments.join(" ")));
                }
                out.push_str(&sh_c(command));
            }
            None if assignments.is_empty() && self.dir.is_none() => out.push_str(command),
            None => {
                for a in &assignments {
                    out.push_str(&format!("export {a} && "));
                }
                out.push_str(&group(command));
            }
        }
        out
    }
}

/// The longest command given to `sh -c` as one argument: Linux refuses to start a program
/// with an argument of 128 KiB or more (`MAX_ARG_STRLEN`; E2BIG, "Argument list too long").
const MAX_ARG: usize = 96 * 1024;

/// `sh -c 'command'`, for sudo to start. A command longer than [`MAX_ARG`] goes in several
/// arguments that sh joins and `eval`s (the whole command line may hold about 2 MiB, Linux's
/// `ARG_MAX`); either way the command runs with no positional parameters and `$0` = `sh`.
fn sh_c(command: &str) -> String {
    // A command beginning with `-` or `+` is its own words, never sh's options (stop 40
    // tester t36: `-x` under `as_user` was `sh -c -x`), as the supervisor runs it.
    if command.starts_with(['-', '+']) {
        return sh_c(&format!(" {command}"));
    }
    if command.len() <= MAX_ARG {
        return format!("sh -c {}", quote(command));
    }
    let mut out = String::from(
        "sh -c '_tether_c=; for _tether_a; do _tether_c=$_tether_c$_tether_a; done; set --; \
         eval \"unset _tether_a _tether_c; $_tether_c\"' sh",
    );
    let mut rest = command;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_ARG);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(' ');
        out.push_str(&quote(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

/// `command` as one shell group, so `a; b` cannot escape a `cd ... &&` guard. The one-line
/// form is used when it is safe; a comment, a heredoc or other multi-line text needs the
/// closing brace on a line of its own.
fn group(command: &str) -> String {
    let trimmed = command.trim_end().trim_end_matches(';').trim_end();
    if command.contains('#') || command.contains('\n') {
        format!("{{ {command}\n}}")
    } else if trimmed.ends_with('&') {
        format!("{{ {trimmed} }}")
    } else {
        format!("{{ {trimmed}; }}")
    }
}

/// Whether `path` is the remote home or under it as tether expands it: `~` or `~/...` (see
/// [`quote_path`]).
pub fn at_home(path: &str) -> bool {
    path == "~" || path.starts_with("~/")
}

/// Whether `path` begins with `~user`, another user's home to a shell, which tether does not
/// expand (it quotes it): refused where a path is taken (transfers, `within`).
pub fn names_other_home(path: &str) -> bool {
    path.starts_with('~') && !at_home(path)
}

/// Quotes a path but leaves a leading `~/` to the remote shell's expansion.
fn quote_path(dir: &str) -> String {
    match dir.strip_prefix("~/") {
        Some(rest) => format!("~/{}", quote(rest)),
        None if dir == "~" => "~".to_string(),
        // `cd -P`, `cd -` (to $OLDPWD) and `cd -x` read it as an option: `./-P` is the
        // directory (as uploads write a relative `-x`).
        None if dir.starts_with('-') => quote(&format!("./{dir}")),
        None => quote(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc/def-1.2"), "abc/def-1.2");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME;rm"), "'$HOME;rm'");
    }

    #[test]
    fn plain_command_is_unchanged() {
        assert_eq!(CommandContext::default().render("uptime"), "uptime");
    }

    #[test]
    fn sudo_password_wrapper_feeds_sudo_and_keeps_stdin() {
        // A stand-in for sudo: asks the askpass helper, checks the password, runs the rest.
        let dir = std::env::temp_dir().join(format!("tether-askpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sudo = dir.join("sudo");
        // Like sudo, it asks up to three times; it counts the answers it got in $ASKED.
        std::fs::write(
            &sudo,
            "#!/bin/sh\n[ \"$1\" = -A ] && [ \"$2\" = -u ] && [ \"$4\" = -- ] || exit 90\n\
             for try in 1 2 3; do pw=$(\"$SUDO_ASKPASS\") || exit 91\n\
             echo answer >>\"$ASKED\"\n\
             if [ \"$pw\" = \"$EXPECTED\" ]; then shift 4; exec \"$@\"; fi; done\nexit 92\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .args(["755"])
            .arg(&sudo)
            .status()
            .unwrap();
        let ctx = CommandContext::default()
            .with_env(&[("A".into(), "x y".into())])
            .as_user("deploy")
            .with_sudo_password(true);
        assert!(ctx.needs_sudo_password());
        let rendered = ctx.render("cat; echo \"A=$A pw=${TETHER_SUDO_PW-unset}\"");
        assert!(!rendered.contains("s3cret"));
        let run = |expected: &str| {
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(&rendered)
                .env(
                    "PATH",
                    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
                )
                .env("EXPECTED", expected)
                .env("ASKED", dir.join("asked"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"s3cret\nfile data\n").unwrap();
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let answers = || {
            let n = std::fs::read_to_string(dir.join("asked")).map_or(0, |s| s.lines().count());
            let _ = std::fs::remove_file(dir.join("asked"));
            n
        };
        assert_eq!(
            run("s3cret"),
            (Some(0), "file data\nA=x y pw=unset\n".to_string())
        );
        assert_eq!(answers(), 1);
        // A wrong password: the helper answers the first prompt only, sudo gives up.
        assert_eq!(run("other").0, Some(91));
        assert_eq!(answers(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_command_too_long_for_one_argument_reaches_sudo_in_pieces() {
        let long = format!(
            "printf '%s\\n' \"$#\" \"$0\" {} | wc -c",
            quote(&"é'x".repeat(60_000))
        );
        let rendered = CommandContext::default().as_user("u").render(&long);
        assert!(rendered.starts_with("sudo -n -u u -- sh -c '_tether_c=;"));
        // What sudo would start: every argument under Linux's limit, the command intact.
        let args = rendered.strip_prefix("sudo -n -u u -- ").unwrap();
        use std::io::Write as _;
        let mut sh = std::process::Command::new("sh")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut script = sh.stdin.take().unwrap();
        script
            .write_all(format!("exec {args}\n").as_bytes())
            .unwrap();
        drop(script);
        let out = sh.wait_with_output().unwrap();
        let want = format!("{}\n", 2 + 3 + 4 * 60_000 + 1);
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{out:?}");
        assert_eq!(sh_c("id -un"), "sh -c 'id -un'");
        assert_eq!(sh_c("-x"), "sh -c ' -x'");
        assert_eq!(sh_c("+e; id"), "sh -c ' +e; id'");
    }

    #[test]
    fn nesting_within_env_and_user() {
        let ctx = CommandContext::default()
            .within("/srv/app")
            .within("current")
            .with_env(&[("RAILS_ENV".into(), "production".into())])
            .with_env(&[("A".into(), "x y".into())]);
        assert_eq!(
            ctx.render("a; b"),
            "cd /srv/app/current && export RAILS_ENV=production && export A='x y' && { a; b; }"
        );
        assert_eq!(
            ctx.as_user("deploy").render("id -un"),
            "cd /srv/app/current && sudo -n -u deploy -- env RAILS_ENV=production A='x y' sh -c 'id -un'"
        );
        assert_eq!(
            CommandContext::default().within("~/x y").render("ls"),
            "cd ~/'x y' && { ls; }"
        );
        // Only `~` and `~/` are the home; `~foo` is a directory of that name, relative to the
        // outer one (stop 41 tester t37: it was taken for an absolute path).
        for (inner, cd) in [
            ("~foo/..", "'/srv/~foo/..'"),
            ("~", "~"),
            ("~/x", "~/x"),
            ("/tmp", "/tmp"),
        ] {
            assert_eq!(
                CommandContext::default()
                    .within("/srv")
                    .within(inner)
                    .render("pwd"),
                format!("cd {cd} && {{ pwd; }}")
            );
        }
        // A directory that begins with `-` is never an option of `cd`.
        for (dir, cd) in [
            ("-P", "./-P"),
            ("-", "./-"),
            ("-x y", "'./-x y'"),
            ("--", "./--"),
        ] {
            assert_eq!(
                CommandContext::default().within(dir).render("pwd"),
                format!("cd {cd} && {{ pwd; }}")
            );
        }
        assert_eq!(
            CommandContext::default()
                .within("-P")
                .within("a")
                .render("pwd"),
            "cd ./-P/a && { pwd; }"
        );
        let dir = CommandContext::default().within("/d");
        assert_eq!(dir.render("a # note"), "cd /d && { a # note\n}");
        assert_eq!(dir.render("sleep 1 &"), "cd /d && { sleep 1 & }");
        assert_eq!(dir.render("a;"), "cd /d && { a; }");
    }
}
