//! Runs one parsed command and prints its result.

use std::process::ExitCode;

use crate::cli::{Cli, Command, Cost, DisplayCmd, Ssh, Who};
use crate::client::{Cluster, connect, whoami};
use crate::error::Error;
use crate::out::{Format, cell, structured, table};
use crate::{aws, cost, display, lock, open, tenant};

/// Runs `cli`.
pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    if let Command::Completion { shell } = cli.command {
        print!("{}", crate::complete::script(shell));
        return Ok(ExitCode::SUCCESS);
    }
    let k = connect(cli.context.as_deref()).await?;
    let ns = cli.namespace.clone().unwrap_or_else(|| k.namespace.clone());
    let f = cli.output;
    match cli.command {
        Command::Display(d) => display_cmd(&k, &ns, f, d).await,
        Command::Console(a) => {
            let ws = display::workspace(&k.client, &ns, &a.workspace).await?;
            let t = aws::target(&k.client, &ws, a.aws.region).await?;
            print!("{}", aws::console(&t).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ssh(s) => ssh(&k, &ns, s).await,
        Command::Cost(c) => cost_cmd(&k, cli.namespace.as_deref().unwrap_or(&ns), cli.namespace.is_some(), f, &c).await,
        Command::Receipt(r) => {
            let list = tenant::receipts(&k.client, &r.operator_namespace, &r.tenant).await?;
            if f == Format::Table {
                let parts: Vec<String> = list.iter().map(tenant::render_receipt).collect();
                print!("{}", parts.join("\n"));
            } else {
                print!("{}", structured(&list, f)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Orphans(o) => orphans(&k, o.tenant.as_deref(), f).await,
        Command::Completion { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// The lock identity: `--as` (checked), else `user:<the name the API server knows you by>`.
pub async fn identity(k: &Cluster, who: &Who) -> Result<String, Error> {
    if let Some(raw) = &who.as_ {
        return lock::parse_identity(raw).map_err(Error::Usage);
    }
    // Taken as it is: authenticated names often hold colons (system:serviceaccount:..., ARNs).
    let me = whoami(k).await;
    if me.trim().is_empty() {
        return Err(Error::Usage(
            "the API server names no user for your credentials: say who you are with --as <name>".into(),
        ));
    }
    Ok(format!("user:{me}"))
}

async fn display_cmd(k: &Cluster, ns: &str, f: Format, sub: DisplayCmd) -> Result<ExitCode, Error> {
    match sub {
        DisplayCmd::Status { workspace } => {
            let st = display::status(&k.client, ns, &workspace).await?;
            if f == Format::Table {
                let row = vec![
                    workspace,
                    st.mode.clone(),
                    st.status.clone(),
                    cell(Some(&st.resolution)),
                    st.protocol.clone(),
                    st.controller.clone(),
                    cell(Some(&st.holder)),
                    cell(st.expires_at.as_deref()),
                ];
                let h = ["NAME", "MODE", "STATUS", "RESOLUTION", "PROTOCOL", "CONTROLLER", "HOLDER", "EXPIRES"];
                print!("{}", table(&h, &[row]));
            } else {
                print!("{}", structured(&st, f)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        DisplayCmd::Take(t) => {
            let me = identity(k, &t.who).await?;
            let secs = lock::parse_duration(&t.for_).map_err(Error::Usage)?;
            let ws = display::display_workspace(&k.client, ns, &t.workspace).await?;
            let taken = display::take(&k.client, &ws, &me, secs, t.force).await?;
            report_take(ns, &t.workspace, &taken, f)?;
            if t.wait {
                open::hold_until_interrupted(&k.client, &ws, &me, secs, None).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DisplayCmd::Release(rel) => {
            let me = identity(k, &rel.who).await?;
            let ws = display::display_workspace(&k.client, ns, &rel.workspace).await?;
            match display::release(&k.client, &ws, &me, rel.force).await? {
                Some(h) => println!("display of workspace {ns}/{} released (was held by {h})", rel.workspace),
                None => println!("display of workspace {ns}/{} is not held by anyone", rel.workspace),
            }
            Ok(ExitCode::SUCCESS)
        }
        DisplayCmd::Open(o) => open::open(k, ns, &identity(k, &o.who).await?, &o).await,
    }
}

fn report_take(ns: &str, ws: &str, t: &display::Taken, f: Format) -> Result<(), Error> {
    if f != Format::Table {
        print!("{}", structured(t, f)?);
        return Ok(());
    }
    match &t.previous {
        Some(p) => {
            println!("display of workspace {ns}/{ws} taken over from {p} by {} until {}", t.holder, t.expires_at);
        }
        None => println!("display of workspace {ns}/{ws} held by {} until {}", t.holder, t.expires_at),
    }
    Ok(())
}

async fn ssh(k: &Cluster, ns: &str, s: Ssh) -> Result<ExitCode, Error> {
    let ws = display::workspace(&k.client, ns, &s.workspace).await?;
    let mut t = aws::target(&k.client, &ws, s.aws.region).await?;
    if let Some(u) = s.aws.os_user {
        t.os_user = u;
    }
    let cmd = aws::ssh_command(&t, None);
    if s.print || !aws::have_aws_cli() {
        if !s.print {
            println!("# the AWS CLI (v2) is not on PATH; with it installed, run:");
        }
        println!("{}", aws::shell_line(&cmd));
        return Ok(ExitCode::SUCCESS);
    }
    open::exec(&cmd).await
}

async fn cost_cmd(k: &Cluster, ns: &str, ns_given: bool, f: Format, c: &Cost) -> Result<ExitCode, Error> {
    // -A, or --tenant without -n: a Tenant spans namespaces.
    let scope = (!(c.all_namespaces || (c.tenant.is_some() && !ns_given))).then_some(ns);
    let r = cost::report(&k.client, scope, c.tenant.as_deref()).await?;
    if f != Format::Table {
        print!("{}", structured(&r, f)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = r
        .workspaces
        .iter()
        .map(|l| {
            vec![l.namespace.clone(), l.name.clone(), l.tenant.clone(), cell(Some(&l.phase)), cell(Some(&l.hourly_usd))]
        })
        .collect();
    print!("{}", table(&["NAMESPACE", "NAME", "TENANT", "PHASE", "$/H"], &rows));
    println!();
    let mut rows: Vec<Vec<String>> =
        r.tenants.iter().map(|t| vec![t.tenant.clone(), t.workspaces.to_string(), t.hourly_usd.clone()]).collect();
    rows.push(vec!["TOTAL".into(), r.workspaces.len().to_string(), r.total_hourly_usd.clone()]);
    print!("{}", table(&["TENANT", "WORKSPACES", "$/H"], &rows));
    Ok(ExitCode::SUCCESS)
}

async fn orphans(k: &Cluster, tenant_name: Option<&str>, f: Format) -> Result<ExitCode, Error> {
    let o = tenant::orphans(&k.client, tenant_name).await?;
    if f != Format::Table {
        print!("{}", structured(&o, f)?);
        return Ok(ExitCode::SUCCESS);
    }
    if o.orphans.is_empty() {
        println!("No orphans found.");
    } else {
        let rows: Vec<Vec<String>> = o
            .orphans
            .iter()
            .map(|x| {
                let kind = if x.retained { format!("{} (retained)", x.kind) } else { x.kind.clone() };
                vec![
                    x.tenant.clone(),
                    kind,
                    x.id.clone(),
                    x.region.clone(),
                    tenant::short_time(&x.detected_at),
                    x.reason.clone(),
                ]
            })
            .collect();
        print!("{}", table(&["TENANT", "KIND", "ID", "REGION", "DETECTED", "REASON"], &rows));
    }
    for (t, n) in &o.truncated {
        println!("tenant {t}: {n} orphans in total; status lists the first 100");
    }
    Ok(ExitCode::SUCCESS)
}
