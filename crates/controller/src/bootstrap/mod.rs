//! User-data rendering. Templates live beside this file as shell scripts; rendering substitutes
//! `{{NAME}}` placeholders. User-data never carries a secret value: a tenant VM's credentials reach
//! it through the bootstrap bundle's ARN, a Workspace's own values (its token, its display
//! password) through its own secret's ARN, each read at boot with the instance role. A Workspace
//! never reads the tenant's bundle.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use molecule_crds::v1alpha1::{DisplayMode, DisplayProtocol};

const WORKSPACE: &str = include_str!("templates/workspace.sh");
const TENANT: &str = include_str!("templates/tenant.sh");
const DATA_VOLUME: &str = include_str!("templates/data-volume.sh");
const NOVNC: &str = include_str!("templates/display-novnc.sh");
const DCV: &str = include_str!("templates/display-dcv.sh");
const DISPLAY_HEALTH: &str = include_str!("templates/display-health.sh");
const GPU_DRIVER: &str =
    "command -v nvidia-smi >/dev/null || { apt-get install -y -q ubuntu-drivers-common && ubuntu-drivers install; }";

/// EC2's limit on user-data, before base64.
pub const MAX_USER_DATA: usize = 16 * 1024;
/// Port of the agent runtime on the instance (opened to the tenant's security group only).
pub const AGENT_PORT: u16 = 8000;
/// Port of the tenant platform on its VM (localhost only; the tunnel reaches it there).
pub const PLATFORM_PORT: u16 = 8080;
/// Registry prefix of agent runtime images: the runtime `hermes` runs `<prefix>hermes:stable`.
pub const RUNTIME_IMAGE_PREFIX: &str = "ghcr.io/moleculesai/agent-";

/// Why user-data could not be rendered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A value would break out of its shell quoting.
    #[error("{field} contains a character user-data cannot carry ({found:?})")]
    Unsafe {
        /// The field, as a path from the object root.
        field: String,
        /// The offending character.
        found: char,
    },
    /// Rendered user-data exceeds EC2's limit.
    #[error("user-data is {size} bytes, more than EC2's {MAX_USER_DATA}; shorten spec.env")]
    TooLarge {
        /// Rendered size.
        size: usize,
    },
}

/// Desktop settings for rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Display {
    /// desktop-control or gpu-desktop-control.
    pub mode: DisplayMode,
    /// novnc or dcv.
    pub protocol: DisplayProtocol,
    /// Screen width.
    pub width: u32,
    /// Screen height.
    pub height: u32,
}

/// Everything a workspace's user-data is rendered from.
#[derive(Clone, Debug)]
pub struct WorkspaceBoot<'a> {
    /// The workspace hostname.
    pub hostname: &'a str,
    /// AWS region (for the instance's own CLI calls).
    pub region: &'a str,
    /// ARN of the Workspace's own secret (never the tenant's bundle).
    pub secret_arn: &'a str,
    /// The tenant platform's hostname, once the Tenant has one (not a secret).
    pub tenant_hostname: Option<&'a str>,
    /// Runtime name (spec.runtime).
    pub runtime: &'a str,
    /// Non-secret environment (spec.env).
    pub env: &'a BTreeMap<String, String>,
    /// The data volume, when one is attached.
    pub data_volume_id: Option<&'a str>,
    /// The desktop, when enabled.
    pub display: Option<Display>,
    /// Whether the instance type has a GPU.
    pub gpu: bool,
}

fn check(field: &str, v: &str, forbidden: &[char]) -> Result<(), RenderError> {
    match v.chars().find(|c| forbidden.contains(c) || c.is_control()) {
        Some(found) => Err(RenderError::Unsafe { field: field.to_owned(), found }),
        None => Ok(()),
    }
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Renders a workspace's user-data.
pub fn workspace(b: &WorkspaceBoot<'_>) -> Result<String, RenderError> {
    check("metadata.name", b.hostname, &['\''])?;
    check("spec.runtime", b.runtime, &['\''])?;
    check("status.secretArn", b.secret_arn, &['\''])?;
    let mut env_file = String::new();
    for (k, v) in b.env {
        check(&format!("spec.env.{k}"), v, &[])?;
        let _ = writeln!(env_file, "{k}={v}");
    }
    let _ = write!(env_file, "MOLECULE_RUNTIME={}\nMOLECULE_HOSTNAME={}\n", b.runtime, b.hostname);
    env_file.push_str("MOLECULE_SECRET_FILE=/run/molecule/workspace.json\n");
    if let Some(h) = b.tenant_hostname {
        check("status.hostname of the Tenant", h, &[])?;
        let _ = writeln!(env_file, "MOLECULE_TENANT_HOSTNAME={h}");
    }
    let data = b.data_volume_id.map_or(String::new(), |id| {
        fill(DATA_VOLUME, &[("VOLUME_ID_NODASH", &id.replace('-', "")), ("VOLUME_ID", id)])
    });
    let display = b.display.map_or(String::new(), |d| {
        let template = match d.protocol {
            DisplayProtocol::Novnc => NOVNC,
            DisplayProtocol::Dcv => DCV,
        };
        let gpu = if d.mode == DisplayMode::GpuDesktopControl || b.gpu { GPU_DRIVER } else { "" };
        fill(
            template,
            &[
                ("WIDTH", &d.width.to_string()),
                ("HEIGHT", &d.height.to_string()),
                ("GPU_DRIVER", gpu),
                ("DISPLAY_HEALTH", DISPLAY_HEALTH),
            ],
        )
    });
    let image = format!("{RUNTIME_IMAGE_PREFIX}{}:stable", b.runtime);
    let out = fill(
        WORKSPACE,
        &[
            ("REGION", b.region),
            ("SECRET_ARN", b.secret_arn),
            ("RUNTIME_IMAGE", &image),
            ("AGENT_PORT", &AGENT_PORT.to_string()),
            ("HOSTNAME", b.hostname),
            ("DATA_VOLUME", &data),
            ("ENV_FILE_B64", &aws_smithy_types::base64::encode(env_file.as_bytes())),
            ("DISPLAY", &display),
        ],
    );
    if out.len() > MAX_USER_DATA {
        return Err(RenderError::TooLarge { size: out.len() });
    }
    Ok(out)
}

/// Everything a tenant VM's user-data is rendered from. No secret value: the bundle's ARN only.
#[derive(Clone, Debug)]
pub struct TenantBoot<'a> {
    /// The tenant hostname.
    pub hostname: &'a str,
    /// AWS region of the VM (and of its bundle).
    pub region: &'a str,
    /// ARN of the bootstrap bundle.
    pub bundle_arn: &'a str,
    /// Platform container image.
    pub image: &'a str,
}

/// Refuses an image reference that could break out of shell quoting (the CRD's pattern already
/// refuses it at apply time; this guards the SSM command and user-data too).
pub fn check_image(image: &str) -> Result<(), RenderError> {
    match image.chars().find(|c| !(c.is_ascii_alphanumeric() || "._/:@+-".contains(*c))) {
        Some(found) => Err(RenderError::Unsafe { field: "spec.image".into(), found }),
        None => Ok(()),
    }
}

/// Renders a tenant VM's user-data.
pub fn tenant(b: &TenantBoot<'_>) -> Result<String, RenderError> {
    check("status.hostname", b.hostname, &['\''])?;
    check("status.secretArn", b.bundle_arn, &['\''])?;
    check_image(b.image)?;
    let out = fill(
        TENANT,
        &[
            ("REGION", b.region),
            ("BUNDLE_ARN", b.bundle_arn),
            ("PLATFORM_IMAGE", b.image),
            ("PLATFORM_PORT", &PLATFORM_PORT.to_string()),
            ("HOSTNAME", b.hostname),
        ],
    );
    if out.len() > MAX_USER_DATA {
        return Err(RenderError::TooLarge { size: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
