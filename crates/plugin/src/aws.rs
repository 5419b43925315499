//! The instance behind a Workspace: its serial console (EC2 GetConsoleOutput, called with the
//! user's own AWS credentials from the default chain; AWS_ENDPOINT_URL is honoured) and the EC2
//! Instance Connect endpoint commands for a shell or a tunnel to the desktop.

use aws_config::BehaviorVersion;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use kube::{Api, ResourceExt};
use molecule_crds::v1alpha1::{DisplayProtocol, OsFamily, Tenant, Workspace};

use crate::error::{Error, one_line};

/// The instance of a Workspace, and where it runs.
#[derive(Clone, Debug)]
pub struct Target {
    /// namespace/name.
    pub object: String,
    /// i-...
    pub instance_id: String,
    /// From `--region`, else the Tenant's `status.region`, else the AWS default chain's.
    pub region: Option<String>,
    /// Login user of the image (ubuntu, admin) unless `--os-user`.
    pub os_user: String,
}

/// Finds the instance of `ws` (an error when it has none) and its region.
pub async fn target(client: &kube::Client, ws: &Workspace, region: Option<String>) -> Result<Target, Error> {
    let object = format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any());
    let st = ws.status.clone().unwrap_or_default();
    let Some(instance_id) = st.instance_id.filter(|i| !i.is_empty()) else {
        let phase = st.phase.and_then(|p| serde_json::to_value(p).ok()).and_then(|v| v.as_str().map(str::to_owned));
        return Err(Error::NotReady {
            object,
            cause: format!("has no instance yet (phase {})", phase.as_deref().unwrap_or("unknown")),
        });
    };
    let region = match region {
        Some(r) => Some(r),
        // Reading the Tenant needs cluster-scope read; without it the AWS default region applies.
        None => Api::<Tenant>::all(client.clone())
            .get_opt(&ws.spec.tenant)
            .await
            .ok()
            .flatten()
            .and_then(|t| t.status?.region),
    };
    let os_user = match st.resolved.map(|r| r.os_family) {
        Some(OsFamily::Debian) => "admin",
        Some(OsFamily::Custom) => "ec2-user",
        _ => "ubuntu",
    };
    Ok(Target { object, instance_id, region, os_user: os_user.to_owned() })
}

/// The serial console output, decoded.
pub async fn console(t: &Target) -> Result<String, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &t.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let ec2 = aws_sdk_ec2::Client::new(&loader.load().await);
    let fail = |message: String| Error::Call {
        action: "read the console of".into(),
        object: format!("workspace {} (instance {})", t.object, t.instance_id),
        message,
    };
    let out = ec2.get_console_output().instance_id(&t.instance_id).latest(true).send().await.map_err(|e| {
        let code = e.code().unwrap_or("error").to_owned();
        let msg = e.message().map_or_else(|| one_line(&format!("{e}")), one_line);
        fail(format!("{code}: {msg}"))
    })?;
    let b64 = out.output().unwrap_or_default();
    let bytes = aws_smithy_types::base64::decode(b64).map_err(|e| fail(format!("the output is not base64: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The localhost port the desktop listens on inside the instance (see the bootstrap templates).
pub fn display_port(p: DisplayProtocol) -> u16 {
    match p {
        DisplayProtocol::Dcv => 8443,
        DisplayProtocol::Novnc => 6080,
    }
}

fn region_args(t: &Target) -> Vec<String> {
    t.region.iter().flat_map(|r| ["--region".to_owned(), r.clone()]).collect()
}

/// `aws ec2-instance-connect ssh` through the EC2 Instance Connect endpoint (no port open in any
/// security group), optionally with a local port forward.
pub fn ssh_command(t: &Target, forward: Option<(u16, u16)>) -> Vec<String> {
    let mut c: Vec<String> = ["aws", "ec2-instance-connect", "ssh", "--instance-id"].map(str::to_owned).to_vec();
    c.push(t.instance_id.clone());
    c.extend(["--os-user".to_owned(), t.os_user.clone(), "--connection-type".to_owned(), "eice".to_owned()]);
    if let Some((local, remote)) = forward {
        c.extend(["--local-forwarding".to_owned(), format!("{local}:localhost:{remote}")]);
    }
    c.extend(region_args(t));
    c
}

/// The URL the forwarded desktop answers on.
pub fn local_url(p: DisplayProtocol, local: u16) -> String {
    match p {
        DisplayProtocol::Dcv => format!("https://localhost:{local}/"),
        DisplayProtocol::Novnc => format!("http://localhost:{local}/vnc.html?autoconnect=1&resize=remote"),
    }
}

/// Where the desktop's password comes from, per protocol: the Workspace's own secret
/// (`status.secretArn`), handed to the lock holder in a file only they read.
pub fn password_note(p: DisplayProtocol) -> &'static str {
    match p {
        DisplayProtocol::Novnc => {
            "the Workspace's display password (its own secret, status.secretArn): noVNC asks for it; read with your AWS credentials into the file below"
        }
        DisplayProtocol::Dcv => {
            "DCV asks for the OS user 'agent' and the Workspace's display password (its own secret, status.secretArn), read with your AWS credentials into the file below"
        }
    }
}

/// Shell-quotes a command for printing.
pub fn shell_line(c: &[String]) -> String {
    c.iter()
        .map(|a| {
            if a.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_./:=@,".contains(ch)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the AWS CLI v2 is on PATH (v1 has no `ec2-instance-connect ssh`).
pub fn have_aws_cli() -> bool {
    std::process::Command::new("aws")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("aws-cli/2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_the_instance_and_ports() {
        let t = Target {
            object: "a/x".into(),
            instance_id: "i-0abc".into(),
            region: Some("us-east-1".into()),
            os_user: "ubuntu".into(),
        };
        assert_eq!(
            shell_line(&ssh_command(&t, Some((16080, 6080)))),
            "aws ec2-instance-connect ssh --instance-id i-0abc --os-user ubuntu --connection-type eice --local-forwarding 16080:localhost:6080 --region us-east-1"
        );
        assert_eq!(shell_line(&["a b".into(), "it's".into()]), r"'a b' 'it'\''s'");
        assert_eq!(display_port(DisplayProtocol::Dcv), 8443);
    }

    #[test]
    fn password_notes_name_the_workspace_secret() {
        for p in [DisplayProtocol::Novnc, DisplayProtocol::Dcv] {
            let n = password_note(p);
            assert!(n.contains("display password") && n.contains("status.secretArn"), "{n}");
            assert!(!n.contains("no per-Workspace password"), "{n}");
        }
        assert!(password_note(DisplayProtocol::Dcv).contains("'agent'"));
    }
}
