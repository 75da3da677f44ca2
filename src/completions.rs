//! `tether completions SHELL`: clap_complete's script for the options and subcommands, with
//! task and stage names completed from the recipe where the shell allows it (bash, zsh, fish):
//! the script asks `tether [-f FILE] tasks --names` (hidden; stages, then the tasks `tether
//! tasks --all` lists that apply) when a word is a task position: the first positional words of
//! `tether [STAGE] TASK...` and those of `tether watch`. Elvish and PowerShell get clap's
//! script as it is.

use clap::Command;
use clap_complete::Shell;

/// The completion script for `shell` of `cmd` (the whole `tether` command).
pub fn script(shell: Shell, cmd: &mut Command) -> String {
    let mut text = Vec::new();
    clap_complete::generate(shell, cmd, "tether", &mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    match shell {
        Shell::Bash => format!("{text}{}", bash(cmd)),
        Shell::Zsh => zsh(&text),
        Shell::Fish => format!("{text}{FISH}{}", fish_after_targets(cmd)),
        _ => text,
    }
}

/// Subcommands after which no word is a task (all but `watch`).
fn not_task_subcommands(cmd: &Command) -> Vec<String> {
    cmd.get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "watch")
        .chain(["help".to_string()])
        .collect()
}

/// Global options that take a value: the word after one is that value, not a task.
fn value_options(cmd: &Command) -> Vec<String> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        if !arg.get_action().takes_values() || arg.is_positional() {
            continue;
        }
        if let Some(s) = arg.get_short() {
            out.push(format!("-{s}"));
        }
        if let Some(l) = arg.get_long() {
            out.push(format!("--{l}"));
        }
    }
    out
}

fn bash(cmd: &Command) -> String {
    format!(
        r#"
# Task and stage names from the recipe (tether tasks --names), where a task may be typed.
_tether_with_tasks() {{
    _tether "$@"
    local line="${{COMP_LINE:0:COMP_POINT}}"
    local word="${{line##*[[:space:]]}}"
    [[ "$word" == -* ]] && return 0
    case "${{COMP_WORDS[COMP_CWORD-1]}}" in
        {values}) return 0 ;;
    esac
    local i file=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -f|--file) file="${{COMP_WORDS[i+1]}}" ;;
            {subcommands}) return 0 ;;
        esac
    done
    local names
    names=$(tether ${{file:+-f "$file"}} tasks --names 2>/dev/null) || return 0
    # bash splits words at `:`: complete the part after the last one.
    local prefix="${{word%"${{word##*:}}"}}" n IFS=$'\n'
    # clap's replies for a word with `:` are for its last part alone: no subcommand or option.
    [[ "$word" == *:* ]] && COMPREPLY=()
    local have=$'\n'"${{COMPREPLY[*]}}"$'\n'
    for n in $(compgen -W "$names" -- "$word"); do
        n="${{n#"$prefix"}}"
        [[ "$have" == *$'\n'"$n"$'\n'* ]] || COMPREPLY+=("$n")
    done
}}
complete -F _tether_with_tasks -o bashdefault -o default tether
"#,
        values = value_options(cmd).join("|"),
        subcommands = not_task_subcommands(cmd).join("|"),
    )
}

/// The names, for zsh: `_default` (files) at the `targets` positions becomes them.
const ZSH_FUNCTION: &str = r#"(( $+functions[_tether_task_names] )) ||
_tether_task_names() {
    local file=${opt_args[-f]:-${opt_args[--file]}}
    local -a names
    names=(${(f)"$(tether ${file:+-f "$file"} tasks --names 2>/dev/null)"})
    compadd -a names
}

"#;

fn zsh(text: &str) -> String {
    let text = text
        .lines()
        .map(|l| {
            if l.contains("::targets -- ") && l.ends_with(":_default' \\") {
                l.replace(":_default' \\", ":_tether_task_names' \\")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let hook = "if [ \"$funcstack[1]\" = \"_tether\" ]; then";
    match text.find(hook) {
        Some(i) => format!("{}{ZSH_FUNCTION}{}\n", &text[..i], &text[i..]),
        None => text + "\n",
    }
}

/// fish: task names after a stage or a task too (`tether production app<TAB>`, `tether
/// app:one app<TAB>`), as bash completes them (stop 44 tester t54: fish stopped after the
/// first word): where the first word is no subcommand.
fn fish_after_targets(cmd: &Command) -> String {
    let subcommands = not_task_subcommands(cmd).join(" ");
    format!(
        "function __tether_after_targets\n    set -l cmd (__fish_tether_needs_command)\n    \
         test -n \"$cmd\"; or return 1\n    not contains -- $cmd[1] watch {subcommands}\nend\n\
         complete -c tether -n \"__tether_after_targets\" -f -a \"(__tether_task_names)\"\n"
    )
}

const FISH: &str = r#"
# Task and stage names from the recipe (tether tasks --names).
function __tether_task_names
    set -l tokens (commandline -opc)
    set -l file
    for i in (seq (count $tokens))
        if contains -- $tokens[$i] -f --file
            set file $tokens[(math $i + 1)]
        end
    end
    if test -n "$file"
        tether -f $file tasks --names 2>/dev/null
    else
        tether tasks --names 2>/dev/null
    end
end
complete -c tether -n "__fish_tether_needs_command" -f -a "(__tether_task_names)"
complete -c tether -n "__fish_tether_using_subcommand watch" -f -a "(__tether_task_names)"
"#;
