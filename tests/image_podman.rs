//! The container image: hadolint passes the production `Dockerfile` with
//! no warnings, and an image built here with buildah runs under podman,
//! serves `/metrics` and `/healthz`, runs as a non-root user and reports
//! healthy through its own HEALTHCHECK.
//!
//! No registry is reachable from these machines, so the image under test
//! is built `FROM scratch` around this build's `tally` and the host's C
//! library (`ldd` lists them), where the production Dockerfile compiles in
//! `rust:bookworm` and copies the binary into distroless (the same glibc
//! family, CA certificates, user 65532). The entrypoint, user, ports and
//! HEALTHCHECK are the production file's.
//!
//! Building and running containers needs root: without it the test prints
//! a SKIP line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = common::venv_peer("hadolint", "the_dockerfile_passes_hadolint") else {
        return;
    };
    let dockerfile = root().join("Dockerfile");
    let out = run(
        &hadolint,
        &[
            "--failure-threshold",
            "style",
            dockerfile.to_str().expect("utf8"),
        ],
        &[],
    );
    ok(&out, "hadolint");
    assert!(
        out.stdout.is_empty(),
        "hadolint findings: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The production Dockerfile's lines from `USER` on: what the test image
/// shares with it.
fn runtime_lines() -> String {
    let production = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let mut lines = Vec::new();
    let mut taking = false;
    for line in production.lines() {
        taking |= line.starts_with("USER ");
        if taking {
            lines.push(line);
        }
    }
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK")));
    lines.join("\n") + "\n"
}

/// A root filesystem: the binary, the C libraries it links, a passwd
/// naming user 65532, and an empty /tmp.
fn assemble(context: &Path) {
    let rootfs = context.join("rootfs");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_tally"));
    std::fs::create_dir_all(rootfs.join("usr/local/bin")).expect("dirs");
    std::fs::copy(&binary, rootfs.join("usr/local/bin/tally")).expect("copy binary");
    let ldd = ok(
        &Command::new("ldd").arg(&binary).output().expect("ldd"),
        "ldd",
    );
    for library in ldd.split_whitespace().filter(|word| word.starts_with('/')) {
        let target = rootfs.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("lib dir");
        // The real file, not the symlink's name only.
        std::fs::copy(library, &target).expect("copy library");
    }
    std::fs::create_dir_all(rootfs.join("etc")).expect("etc");
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").expect("group");
    std::fs::create_dir_all(rootfs.join("tmp")).expect("tmp");
    std::fs::write(
        context.join("Containerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\n{}", runtime_lines()),
    )
    .expect("Containerfile");
}

#[test]
fn an_image_built_with_buildah_runs_non_root_under_podman() {
    let test = "an_image_built_with_buildah_runs_non_root_under_podman";
    if !common::is_root() {
        eprintln!("SKIP {test}: building and running containers needs root");
        return;
    }
    let (Some(buildah), Some(podman)) =
        (common::peer("buildah", test), common::peer("podman", test))
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    // runc, and ulimits these VMs can grant (test-peers.md section 7).
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .expect("containers.conf");
    let env = [("CONTAINERS_CONF", conf.as_path())];
    let context = dir.path().join("context");
    assemble(&context);
    let tag = format!("localhost/tally-test:{}", std::process::id());
    ok(
        &run(
            &buildah,
            &[
                "bud",
                "--isolation",
                "chroot",
                // HEALTHCHECK exists in the Docker image format only.
                "--format",
                "docker",
                "-t",
                &tag,
                context.to_str().expect("utf8"),
            ],
            &env,
        ),
        "buildah bud",
    );
    let port = common::free_port();
    let name = format!("tally-test-{}", std::process::id());
    let started = run(
        &podman,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            // The environment, not a flag: the HEALTHCHECK reads it too.
            "--env",
            &format!("TALLY_LISTEN=127.0.0.1:{port}"),
            &tag,
            "agent",
        ],
        &env,
    );
    ok(&started, "podman run");
    struct Cleanup<'a>(&'a Path, String, String, &'a [(&'a str, &'a Path)]);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = run(self.0, &["rm", "-f", &self.1], self.3);
            let _ = run(self.0, &["rmi", "-f", &self.2], self.3);
        }
    }
    let _cleanup = Cleanup(&podman, name.clone(), tag.clone(), &env);

    let base = format!("http://127.0.0.1:{port}");
    let ready = common::wait_ready(&format!("{base}/healthz"), Duration::from_secs(30));
    let logs = || ok(&run(&podman, &["logs", &name], &env), "podman logs");
    assert!(
        ready,
        "the agent in the container never answered: {}",
        logs()
    );
    let (status, page) = common::http_get(&format!("{base}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    assert!(page.contains("tally_agent_build_info"), "{page}");

    // The user the process runs as, from the container's own view.
    let user = ok(
        &run(
            &podman,
            &["inspect", "--format", "{{.Config.User}}", &name],
            &env,
        ),
        "podman inspect",
    );
    assert_eq!(user.trim(), "65532:65532");
    let top = ok(
        &run(&podman, &["top", &name, "user", "huser"], &env),
        "podman top",
    );
    assert!(
        top.lines()
            .skip(1)
            .all(|l| l.contains("65532") || l.contains("nonroot")),
        "not running as 65532: {top}"
    );
    // The image's own HEALTHCHECK, run once.
    let health = run(&podman, &["healthcheck", "run", &name], &env);
    ok(&health, "podman healthcheck run");
}
