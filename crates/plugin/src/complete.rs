//! Shell completion: static bash/zsh scripts from clap (`completion bash|zsh`), and kubectl's
//! plugin completion protocol (kubectl >= 1.26 runs `kubectl_complete-molecule __complete ARGS`,
//! expecting one candidate per line and a final `:<directive>` line, as cobra prints them).

use clap::CommandFactory;

use crate::cli::{Cli, Shell};

/// The completion script for `shell`, for both `kubectl-molecule` and `kubectl molecule` (the
/// latter through kubectl's own completion and the `kubectl_complete-molecule` helper).
pub fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    let sh = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
    };
    clap_complete::generate(sh, &mut cmd, "kubectl-molecule", &mut buf);
    // clap_complete 4.6 names the bash states of a hyphenated binary two ways (`kubectl__molecule`
    // where it walks the words, `kubectl__subcmd__molecule` in the case arms): make them one.
    String::from_utf8_lossy(&buf).replace("kubectl__subcmd__molecule", "kubectl__molecule")
}

/// cobra's ShellCompDirectiveNoFileComp: do not fall back to file names.
const NO_FILES: u8 = 4;

/// Candidates for the last word of `args` (the words after `kubectl molecule`): subcommands and
/// long flags of the command reached so far.
pub fn cobra(args: &[String]) -> String {
    let root = Cli::command();
    let (last, before) = args.split_last().map_or(("", &[][..]), |(l, b)| (l.as_str(), b));
    let mut cmd = &root;
    for w in before {
        if let Some(sub) = cmd.find_subcommand(w) {
            cmd = sub;
        }
    }
    let mut out: Vec<String> = Vec::new();
    if last.starts_with('-') {
        for a in cmd.get_arguments().chain(root.get_arguments()) {
            if let Some(l) = a.get_long() {
                out.push(format!("--{l}"));
            }
        }
    } else {
        for s in cmd.get_subcommands() {
            out.push(s.get_name().to_owned());
        }
    }
    out.retain(|c| c.starts_with(last));
    out.sort();
    out.dedup();
    out.push(format!(":{NO_FILES}"));
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn cobra_protocol() {
        assert_eq!(cobra(&words(&["di"])), "display\n:4\n");
        assert_eq!(cobra(&words(&["display", ""])), "open\nrelease\nstatus\ntake\n:4\n");
        assert!(cobra(&words(&["display", "take", "--f"])).starts_with("--for\n--force\n"));
        assert!(
            script(Shell::Bash)
                .contains("complete -F _kubectl__molecule -o nosort -o bashdefault -o default kubectl-molecule")
        );
        assert!(!script(Shell::Bash).contains("kubectl__subcmd__molecule"));
        assert!(script(Shell::Zsh).contains("#compdef kubectl-molecule"));
    }
}
