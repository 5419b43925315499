use super::*;

const WS_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:op/dev/tenants/acme/workspaces/u-1-AbCdEf";

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
    b.display =
        Some(Display { mode: DisplayMode::DesktopControl, protocol: DisplayProtocol::Dcv, width: 800, height: 600 });
    let ud = workspace(&b).unwrap();
    assert!(ud.contains("{ printf 'agent:'; secret_field displayPassword; } | chpasswd"));
}

/// The rendered scripts are valid bash (bash -n), whatever the desktop.
#[test]
fn workspace_user_data_parses_as_bash() {
    let env = BTreeMap::new();
    for protocol in [None, Some(DisplayProtocol::Novnc), Some(DisplayProtocol::Dcv)] {
        let mut b = boot(&env);
        b.display =
            protocol.map(|protocol| Display { mode: DisplayMode::DesktopControl, protocol, width: 800, height: 600 });
        let ud = workspace(&b).unwrap();
        let dir = std::env::temp_dir().join(format!("molecule-ud-{}-{protocol:?}.sh", std::process::id()));
        std::fs::write(&dir, &ud).unwrap();
        let out = std::process::Command::new("bash").arg("-n").arg(&dir).output().unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(out.status.success(), "{protocol:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The data-volume fragment, run by bash under the bootstrap's `set -euo pipefail` against a
/// device file, with blkid, mkfs.ext4, mount and mountpoint stubbed (they log their calls), then
/// a line standing for the agent's start. Returns (exit status, calls, whether the agent started).
fn run_data_volume(device: &[u8], blkid_exit: u8, mounted: bool) -> (bool, String, bool) {
    let dir = std::env::temp_dir().join(format!(
        "molecule-dv-{}-{blkid_exit}-{mounted}-{}",
        std::process::id(),
        device.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin, mnt, dev) = (dir.join("bin"), dir.join("mnt"), dir.join("dev"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(&dev, device).unwrap();
    let log = dir.join("calls");
    let stub = |name: &str, code: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/bash\necho \"{name} $*\" >> '{}'\n{code}\n", log.display())).unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
    };
    stub("blkid", &format!("exit {blkid_exit}"));
    stub("mkfs.ext4", "exit 0");
    stub("mount", "exit 0");
    stub("mountpoint", if mounted { "exit 0" } else { "exit 1" });
    stub("chown", "exit 0");
    let fragment = fill(DATA_VOLUME, &[("VOLUME_ID_NODASH", "vol0abc"), ("VOLUME_ID", "vol-0abc")])
        // The test's device is a file, and the mount point and fstab are the test's own.
        .replace("[ -b \"$dev\" ]", "[ -e \"$dev\" ]")
        .replace("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc", &dev.display().to_string())
        .replace("DATA_MNT=/home/agent", &format!("DATA_MNT='{}'", mnt.display()))
        .replace("/etc/fstab", &dir.join("fstab").display().to_string());
    std::fs::write(dir.join("fstab"), "").unwrap();
    let script = format!("set -euo pipefail\nexport PATH='{}':$PATH\n{fragment}\necho AGENT-STARTED\n", bin.display());
    let out = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let started = String::from_utf8_lossy(&out.stdout).contains("AGENT-STARTED");
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), calls, started)
}

/// Issue 13: `blkid || mkfs.ext4` reformatted a volume whose superblock blkid failed to read.
#[test]
fn a_data_volume_is_formatted_only_when_blank() {
    let blank = vec![0_u8; 2 << 20];
    let (ok, calls, started) = run_data_volume(&blank, 2, true);
    assert!(ok && started, "{calls}");
    assert!(calls.contains("mkfs.ext4 -q -L molecule-data"), "a blank volume is formatted: {calls}");

    let mut data = vec![0_u8; 2 << 20];
    data[4096] = 0x53;
    let (ok, calls, started) = run_data_volume(&data, 2, true);
    assert!(!ok && !started, "no signature but not blank: stop");
    assert!(!calls.contains("mkfs"), "never formats a device that holds something: {calls}");

    let (ok, calls, started) = run_data_volume(&blank, 4, true);
    assert!(!ok && !started, "blkid failed to read it");
    assert!(!calls.contains("mkfs"), "{calls}");

    let (ok, calls, started) = run_data_volume(&data, 0, true);
    assert!(ok && started && !calls.contains("mkfs"), "a filesystem is mounted as it is: {calls}");
}

/// Issue 13: the agent started on the root disk when /home/agent was not mounted.
#[test]
fn the_agent_does_not_start_without_the_data_volume_mounted() {
    let (ok, calls, started) = run_data_volume(&[1_u8; 4096], 0, false);
    assert!(!ok, "{calls}");
    assert!(!started, "the agent must not start on the root disk");
    assert!(calls.contains("mount -a") && calls.contains("mountpoint -q"), "{calls}");
}

#[test]
fn a_formatted_volume_is_marked_with_its_id() {
    let frag = fill(DATA_VOLUME, &[("VOLUME_ID_NODASH", "vol0abc"), ("VOLUME_ID", "vol-0abc")]);
    assert!(frag.contains("vol-0abc formatted") && frag.contains(".molecule-formatted"));
    assert!(!frag.contains("{{"));
}
