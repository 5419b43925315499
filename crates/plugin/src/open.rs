//! `display open` and `display take --wait`: hold the lock (renewing it) while a tunnel runs or
//! until Ctrl-C, then give it back.

use std::process::ExitCode;
use std::time::Duration;

use molecule_crds::v1alpha1::Workspace;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::cli::Open;
use crate::client::Cluster;
use crate::error::Error;
use crate::{aws, display, lock, password};

/// Renews the hold every third of its duration until Ctrl-C/SIGTERM (or `child` exits), then
/// releases it. A take-over by someone else ends the hold with an error naming them; any other
/// failed renewal (the API server briefly away) is retried while the hold still lasts.
pub async fn hold_until_interrupted(
    client: &kube::Client,
    ws: &Workspace,
    me: &str,
    secs: i32,
    mut child: Option<Child>,
) -> Result<Option<std::process::ExitStatus>, Error> {
    let every = Duration::from_secs(u64::try_from(secs / 3).unwrap_or(1).max(1));
    let watch = |kind, name: &str| signal(kind).map_err(|e| Error::Usage(format!("failed to watch {name}: {e}")));
    // Streams made once: a signal that arrives during a renewal waits for the next select.
    let (mut int, mut term) = (watch(SignalKind::interrupt(), "SIGINT")?, watch(SignalKind::terminate(), "SIGTERM")?);
    let mut lapses = Instant::now() + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let mut status = None;
    loop {
        let exited = async {
            match child.as_mut() {
                Some(c) => c.wait().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(every) => match display::take(client, ws, me, secs, false).await {
                Ok(_) => lapses = Instant::now() + Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
                Err(e) if retry_renewal(&e, Instant::now() + every < lapses) => {
                    eprintln!("warning: renewing the display lock failed, retrying: {e}");
                }
                Err(e) => return Err(e),
            },
            _ = int.recv() => break,
            _ = term.recv() => break,
            s = exited => { status = s; break; }
        }
    }
    if let Some(c) = child.as_mut() {
        let _ = c.kill().await;
    }
    display::release(client, ws, me, false).await?;
    eprintln!("display lock released");
    Ok(status)
}

/// Whether a failed renewal is worth another try: not when someone else holds the lock now, nor
/// when the hold would lapse before the next try.
pub fn retry_renewal(e: &Error, next_try_in_time: bool) -> bool {
    next_try_in_time && !matches!(e, Error::Held { .. } | Error::NotFound(_) | Error::NotDisplay(_))
}

/// `display open`: take the lock, tunnel to the desktop (or print the command when the AWS CLI
/// is missing, holding the lock until Ctrl-C), release the lock on exit.
pub async fn open(k: &Cluster, ns: &str, me: &str, o: &Open) -> Result<ExitCode, Error> {
    let secs = lock::parse_duration(&o.for_).map_err(Error::Usage)?;
    let ws = display::display_workspace(&k.client, ns, &o.workspace).await?;
    let mut t = aws::target(&k.client, &ws, o.aws.region.clone()).await?;
    if let Some(u) = &o.aws.os_user {
        t.os_user.clone_from(u);
    }
    let protocol = ws.spec.compute.display.as_ref().map(|d| d.protocol).unwrap_or_default();
    let remote = aws::display_port(protocol);
    let local = o.local_port.unwrap_or(remote);
    let taken = display::take(&k.client, &ws, me, secs, o.force).await?;
    let cmd = aws::ssh_command(&t, Some((local, remote)));
    println!("display of workspace {ns}/{} held by {} (renewed while this runs)", o.workspace, taken.holder);
    println!("desktop: {}", aws::local_url(protocol, local));
    println!("password: {}", aws::password_note(protocol));
    let pw_file = hand_password(&ws, &t, ns, &o.workspace).await;
    let child = if aws::have_aws_cli() {
        println!("tunnel: {}", aws::shell_line(&cmd));
        match spawn(&cmd) {
            Ok(c) => Some(c),
            Err(e) => {
                display::release(&k.client, &ws, me, false).await?;
                return Err(e);
            }
        }
    } else {
        println!("the AWS CLI (v2) is not on PATH; open the tunnel yourself with:");
        println!("  {}", aws::shell_line(&cmd));
        println!("press Ctrl-C to release the display lock");
        None
    };
    let status = hold_until_interrupted(&k.client, &ws, me, secs, child).await;
    if let Some(p) = pw_file {
        let _ = std::fs::remove_file(p);
    }
    Ok(status?.map_or(ExitCode::SUCCESS, exit_code))
}

/// The lock is held: the desktop's password from the Workspace's own secret, read with the
/// user's AWS credentials, into a file only the user reads (removed when the lock is released).
/// A failure is said and the hold goes on (the user may have the password another way).
async fn hand_password(ws: &Workspace, t: &aws::Target, ns: &str, name: &str) -> Option<std::path::PathBuf> {
    let object = format!("{ns}/{name}");
    let Some(arn) = ws.status.as_ref().and_then(|s| s.secret_arn.clone()) else {
        eprintln!("warning: workspace {object} has no status.secretArn: no display password to hand over");
        return None;
    };
    let written = match password::fetch(&arn, t.region.as_deref(), &object).await {
        Ok(pw) => password::write(&password::dir(), ns, name, &pw),
        Err(e) => Err(e),
    };
    match written {
        Ok(p) => {
            println!("password file: {} (yours only; removed when the lock is released)", p.display());
            Some(p)
        }
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

fn spawn(cmd: &[String]) -> Result<Child, Error> {
    let (prog, args) = cmd.split_first().ok_or_else(|| Error::Usage("empty command".into()))?;
    Command::new(prog).args(args).kill_on_drop(true).spawn().map_err(|e| Error::Call {
        action: "run".into(),
        object: prog.clone(),
        message: e.to_string(),
    })
}

fn exit_code(s: std::process::ExitStatus) -> ExitCode {
    ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1))
}

/// Runs `cmd` in the foreground (stdio inherited) and exits with its code.
pub async fn exec(cmd: &[String]) -> Result<ExitCode, Error> {
    let mut c = spawn(cmd)?;
    let s = c.wait().await.map_err(|e| Error::Call {
        action: "wait for".into(),
        object: cmd[0].clone(),
        message: e.to_string(),
    })?;
    Ok(exit_code(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_retry_only_what_may_pass() {
        let blip =
            Error::Call { action: "update".into(), object: "lease a/x-display".into(), message: "timeout".into() };
        assert!(retry_renewal(&blip, true));
        assert!(!retry_renewal(&blip, false), "not past the hold's end");
        let taken =
            Error::Held { object: "a/x".into(), holder: "user:bob".into(), until: String::new(), hint: String::new() };
        assert!(!retry_renewal(&taken, true), "taken over: stop");
        assert!(!retry_renewal(&Error::NotFound("workspace a/x".into()), true), "gone: stop");
    }
}
