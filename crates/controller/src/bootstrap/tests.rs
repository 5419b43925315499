use super::*;

const WS_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:op/dev/tenants/acme/workspaces/u-1-AbCdEf";

fn boot(env: &BTreeMap<String, String>) -> WorkspaceBoot<'_> {
    WorkspaceBoot {
        hostname: "agent.acme.ws.internal",
        region: "us-east-1",
        secret_arn: WS_SECRET,
        tenant_hostname: Some("acme.moleculesai.app"),
        runtime: "hermes",
        env,
        data_volume_id: None,
        display: None,
        gpu: false,
    }
}

#[test]
fn plain_workspace_has_no_display_stack_and_no_placeholder_left() {
    let env = BTreeMap::from([("LOG_LEVEL".to_owned(), "info".to_owned())]);
    let ud = workspace(&boot(&env)).unwrap();
    assert!(!ud.contains("{{"), "unfilled placeholder in:\n{ud}");
    assert!(!ud.contains("Xvfb") && !ud.contains("dcv"));
    assert!(ud.contains("moleculesai.app/boot ready"));
    assert!(ud.contains("ghcr.io/moleculesai/agent-hermes:stable"));
    assert!(ud.contains("http-tokens") || ud.contains("X-aws-ec2-metadata-token"), "IMDSv2 token flow");
    // The env travels base64-encoded, so no value can break the script.
    assert!(!ud.contains("LOG_LEVEL=info"));
}

#[test]
fn novnc_desktop_listens_on_localhost_only() {
    let env = BTreeMap::new();
    let mut b = boot(&env);
    b.display =
        Some(Display { mode: DisplayMode::DesktopControl, protocol: DisplayProtocol::Novnc, width: 1280, height: 720 });
    let ud = workspace(&b).unwrap();
    assert!(ud.contains("Xvfb :1 -screen 0 1280x720x24 -nolisten tcp"));
    assert!(ud.contains("x11vnc -display :1 -auth $D/Xauthority -localhost"));
    assert!(ud.contains("websockify --web /usr/share/novnc 127.0.0.1:6080"));
    assert!(ud.contains("moleculesai.app/display"));
    assert!(!ud.contains("nvidia"), "no GPU driver on a CPU desktop");
    assert!(!ud.contains("{{"));
}

#[test]
fn dcv_gpu_desktop_binds_localhost_and_installs_the_driver() {
    let env = BTreeMap::new();
    let mut b = boot(&env);
    b.gpu = true;
    b.display = Some(Display {
        mode: DisplayMode::GpuDesktopControl,
        protocol: DisplayProtocol::Dcv,
        width: 1920,
        height: 1080,
    });
    let ud = workspace(&b).unwrap();
    assert!(ud.contains("web-listen-endpoints=['127.0.0.1:8443']"));
    assert!(ud.contains("ubuntu-drivers install"));
    assert!(!ud.contains("{{"));
}

#[test]
fn data_volume_is_found_by_its_nvme_id() {
    let env = BTreeMap::new();
    let mut b = boot(&env);
    b.data_volume_id = Some("vol-0abc123");
    let ud = workspace(&b).unwrap();
    assert!(ud.contains("Amazon_Elastic_Block_Store_vol0abc123"));
    assert!(ud.contains("/home/agent ext4"));
}

#[test]
fn unsafe_values_and_oversize_are_refused() {
    let env = BTreeMap::from([("X".to_owned(), "a\nb".to_owned())]);
    assert_eq!(workspace(&boot(&env)), Err(RenderError::Unsafe { field: "spec.env.X".into(), found: '\n' }));
    let big = BTreeMap::from([("X".to_owned(), "y".repeat(MAX_USER_DATA))]);
    assert!(matches!(workspace(&boot(&big)), Err(RenderError::TooLarge { .. })));
}

fn tenant_boot(image: &str) -> TenantBoot<'_> {
    TenantBoot {
        hostname: "acme.moleculesai.app",
        region: "us-east-1",
        bundle_arn: "arn:aws:secretsmanager:us-east-1:1:secret:molecule-operator/prod/tenants/acme/bootstrap-x",
        image,
    }
}

#[test]
fn tenant_user_data_carries_the_arn_and_no_secret() {
    let ud = tenant(&tenant_boot("ghcr.io/moleculesai/tenant:1.4.2")).unwrap();
    assert!(ud.contains(
        "BUNDLE_ARN='arn:aws:secretsmanager:us-east-1:1:secret:molecule-operator/prod/tenants/acme/bootstrap-x'"
    ));
    assert!(ud.contains("PLATFORM_IMAGE='ghcr.io/moleculesai/tenant:1.4.2'"));
    assert!(ud.contains("/opt/molecule/redeploy.sh"), "the redeploy entry point SSM runs");
    assert!(ud.contains("127.0.0.1:$PLATFORM_PORT:$PLATFORM_PORT"), "the platform listens on loopback only");
    assert!(!ud.contains("{{"));
    // Secrets are read from the bundle at boot; user-data names only keys, never values.
    for k in ["adminToken", "provisionSharedSecret", "displaySigningSecret"] {
        assert!(!ud.contains(k), "{k} must not be in user-data");
    }
}

#[test]
fn tenant_image_cannot_break_out_of_its_quoting() {
    for bad in ["img' ; curl evil", "img$(id)", "img`id`", "a b"] {
        assert!(matches!(tenant(&tenant_boot(bad)), Err(RenderError::Unsafe { .. })), "{bad}");
    }
}

/// The largest user-data a Workspace can render apart from its env: the longest hostname and
/// secret ARN (600 bytes: a secret name is at most 512), a data volume, the larger desktop stack and the GPU driver.
fn worst_case(env: &BTreeMap<String, String>) -> WorkspaceBoot<'_> {
    static HOST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "h".repeat(253));
    static ARN: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("arn:aws:secretsmanager:{}", "a".repeat(577)));
    static RUNTIME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "r".repeat(63));
    let mut b = boot(env);
    b.hostname = &HOST;
    b.secret_arn = &ARN;
    b.runtime = &RUNTIME;
    b.data_volume_id = Some("vol-0123456789abcdef0");
    b.gpu = true;
    b.display = Some(Display {
        mode: DisplayMode::GpuDesktopControl,
        protocol: DisplayProtocol::Novnc,
        width: 3840,
        height: 2160,
    });
    b
}

/// The CRD's CEL rule caps `spec.env` at `ENV_MAX_BYTES` (sum of key + value + 2 per entry, the
/// bytes of each `KEY=value\n` line): every env the API server accepts must fit EC2's limit.
#[test]
fn any_env_the_api_server_accepts_fits_user_data() {
    use molecule_crds::v1alpha1::ENV_MAX_BYTES;
    // One line at the budget exactly; 1-character keys waste the most on the newline.
    let value = "v".repeat(ENV_MAX_BYTES - 3);
    let env = BTreeMap::from([("K".to_owned(), value)]);
    let ud = workspace(&worst_case(&env)).unwrap();
    eprintln!("worst case with a full env: {} of {MAX_USER_DATA}", ud.len());
    // Non-ASCII values count in bytes, as user-data does: the same budget in 4-byte characters.
    let env = BTreeMap::from([("K".to_owned(), "\u{1F600}".repeat((ENV_MAX_BYTES - 3) / 4))]);
    assert!(workspace(&worst_case(&env)).is_ok());
    let many: BTreeMap<String, String> =
        (0..64).map(|i| (format!("K{i:02}"), "v".repeat((ENV_MAX_BYTES / 64).saturating_sub(5)))).collect();
    assert!(many.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>() <= ENV_MAX_BYTES);
    assert!(workspace(&worst_case(&many)).is_ok());
}

/// The Workspace reads its own secret by ARN and never the tenant's bundle; only that one file is
/// mounted into the agent container.
#[test]
fn workspace_fetches_its_own_secret_never_the_bundle() {
    let env = BTreeMap::new();
    let ud = workspace(&boot(&env)).unwrap();
    assert!(ud.contains(&format!("SECRET_ARN='{WS_SECRET}'")));
    assert!(ud.contains("--secret-id \"$SECRET_ARN\""));
    assert!(ud.contains("-v /run/molecule/workspace.json:/run/molecule/workspace.json:ro"));
    for bundle in ["BUNDLE", "bundle.json", "/bootstrap", "adminToken", "tunnelToken", "ghcrPullToken"] {
        assert!(!ud.contains(bundle), "{bundle} in workspace user-data:\n{ud}");
    }
    assert!(!ud.contains("-v /run/molecule:/run/molecule"), "the whole directory is not mounted");
}

/// The desktop requires the Workspace's password: never `-nopw`, the password from a 0600 file of
/// the display user (never argv or user-data), and an X cookie so nothing goes around VNC.
#[test]
fn novnc_requires_the_workspace_password_from_a_private_file() {
    let env = BTreeMap::new();
    let mut b = boot(&env);
    b.display =
        Some(Display { mode: DisplayMode::DesktopControl, protocol: DisplayProtocol::Novnc, width: 1280, height: 720 });
    let ud = workspace(&b).unwrap();
    assert!(!ud.contains("-nopw"), "x11vnc without a password");
    assert!(ud.contains("-passwdfile $D/passwd"));
    assert!(ud.contains("secret_field displayPassword > \"$D/passwd\""));
    assert!(ud.contains("chown agent:agent \"$D/passwd\""));
    assert!(ud.contains("chmod 0600 \"$D/passwd\""));
    assert!(ud.contains("install -d -m 0700 -o agent -g agent \"$D\""));
    assert!(ud.contains("-nolisten tcp -auth $D/Xauthority"), "X takes a cookie");
    // The password file is written after the secret is fetched, and the display dir is not mounted.
    let fetch = ud.find("get-secret-value").unwrap();
    assert!(fetch < ud.find("$D/passwd").unwrap());
    assert!(!ud.contains("-v /etc/molecule"));
}

#[test]
fn dcv_takes_the_workspace_password_through_a_pipe() {
    let env = BTreeMap::new();
    let mut b = boot(&env);
    b.display = Some(Display { mode: DisplayMode::DesktopControl, protocol: DisplayProtocol::Dcv, width: 800, height: 600 });
    let ud = workspace(&b).unwrap();
    assert!(ud.contains("{ printf 'agent:'; secret_field displayPassword; } | chpasswd"));
}

/// The rendered scripts are valid bash (bash -n), whatever the desktop.
#[test]
fn workspace_user_data_parses_as_bash() {
    let env = BTreeMap::new();
    for protocol in [None, Some(DisplayProtocol::Novnc), Some(DisplayProtocol::Dcv)] {
        let mut b = boot(&env);
        b.display = protocol.map(|protocol| Display { mode: DisplayMode::DesktopControl, protocol, width: 800, height: 600 });
        let ud = workspace(&b).unwrap();
        let dir = std::env::temp_dir().join(format!("molecule-ud-{}-{protocol:?}.sh", std::process::id()));
        std::fs::write(&dir, &ud).unwrap();
        let out = std::process::Command::new("bash").arg("-n").arg(&dir).output().unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(out.status.success(), "{protocol:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
