//! The programs a test starts: the worker in-process on a free port, the
//! `evidence-lens` binary as a child process (its log kept), and the ports
//! and files they are found by.

use lens_worker::server::{router, serve, LensService, Limits, Registry};
use lens_worker::store::SqliteStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fixtures::{read_npy_values, repo_root, temp_folder, test_certificate};

/// Starts the worker on 127.0.0.1:0 in the current runtime with the
/// repository's models (digits, EfficientNet-Lite0); returns its address.
pub async fn start_worker() -> SocketAddr {
    let root = repo_root();
    start_worker_with(&root.join("models")).await
}

/// Starts the worker with the models of `models` (and the repository's
/// data), a fresh store and the default limits.
pub async fn start_worker_with(models: &std::path::Path) -> SocketAddr {
    start_worker_configured(models, &temp_folder("store"), Limits::default()).await
}

/// Starts the worker in-process with this store folder and these limits.
pub async fn start_worker_configured(
    models: &std::path::Path,
    store: &Path,
    limits: Limits,
) -> SocketAddr {
    let registry = Registry::load(
        models,
        &repo_root().join("data"),
        lens_worker::models::Placement::on(tch::Device::Cpu),
    );
    let store = Arc::new(SqliteStore::open(store).unwrap());
    let app = router(
        LensService::new(registry, store, limits),
        &repo_root().join("dist"),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { serve(listener, app).await.unwrap() });
    address
}

/// A role of the `evidence-lens` binary as a separate process (for tests
/// that restart or kill it), its log kept for the test to read.
pub struct ChildProcess {
    pub process: std::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildProcess {
    /// Starts `evidence-lens ARGUMENTS` in the repository and waits until it
    /// logs a line containing `ready`; returns that line too.
    pub fn start(arguments: &[&str], ready: &str) -> (ChildProcess, String) {
        Self::start_with_env(arguments, &[], ready)
    }

    /// The same with more environment variables.
    pub fn start_with_env(
        arguments: &[&str],
        env: &[(&str, &str)],
        ready: &str,
    ) -> (ChildProcess, String) {
        use std::io::BufRead;
        let mut process = std::process::Command::new(worker_binary())
            .current_dir(repo_root())
            .args(arguments)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(process.stderr.take().unwrap()).lines();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let line = loop {
            let line = match lines.next() {
                Some(line) => line.unwrap(),
                None => panic!(
                    "evidence-lens {arguments:?} exited before logging {ready:?}: {:?}",
                    log.lock().unwrap()
                ),
            };
            log.lock().unwrap().push(line.clone());
            if line.contains(ready) {
                break line;
            }
        };
        // Keep reading its log so it never blocks on a full pipe.
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        (ChildProcess { process, log }, line)
    }

    /// Whether it has logged a line containing `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    /// Sends `signal` ("TERM", "INT") and waits up to a minute for the
    /// process to exit; its exit status. Panics if it logged a panic.
    pub async fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.process.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let exit = loop {
            if let Some(exit) = self.process.try_wait().unwrap() {
                break exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within a minute of SIG{signal}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        // The log reader may still hold the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !self.logged("panicked"),
            "a panic after SIG{signal}: {:?}",
            self.log.lock().unwrap()
        );
        exit
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The address in a line "Evidence Lens on http://ADDRESS ...".
pub fn listening_address(line: &str) -> SocketAddr {
    let rest = line.split("Evidence Lens on http://").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// The worker as a separate process (the `evidence-lens serve` binary), for
/// tests that restart or kill it.
pub struct ChildWorker {
    pub child: ChildProcess,
    pub address: SocketAddr,
}

impl ChildWorker {
    /// Starts `evidence-lens serve` on a free port with this store folder.
    pub fn start(store: &Path) -> ChildWorker {
        Self::start_with(store, &[])
    }

    /// The same, with more `serve` options.
    pub fn start_with(store: &Path, options: &[&str]) -> ChildWorker {
        let store = store.to_str().unwrap();
        let mut arguments = vec!["serve", "--listen", "127.0.0.1:0", "--store", store];
        arguments.extend_from_slice(options);
        let (child, line) = ChildProcess::start(&arguments, "Evidence Lens on http://");
        ChildWorker {
            child,
            address: listening_address(&line),
        }
    }

    /// The same, with more environment variables (`OMP_NUM_THREADS`...).
    pub fn start_with_env(store: &Path, options: &[&str], env: &[(&str, &str)]) -> ChildWorker {
        let store = store.to_str().unwrap();
        let mut arguments = vec!["serve", "--listen", "127.0.0.1:0", "--store", store];
        arguments.extend_from_slice(options);
        let (child, line) =
            ChildProcess::start_with_env(&arguments, env, "Evidence Lens on http://");
        ChildWorker {
            child,
            address: listening_address(&line),
        }
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(mut self) {
        self.child.kill();
    }
}

/// The `evidence-lens` binary of this build (cargo builds it for the
/// worker's own tests, next to this test binary's folder).
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("evidence-lens");
    assert!(
        binary.exists(),
        "{} is missing: cargo build --release -p lens-worker",
        binary.display()
    );
    binary
}

/// Runs the `evidence-lens` binary in the repository with these arguments,
/// checks that it succeeded (its stderr otherwise) and returns its stdout.
pub fn run_command<S: AsRef<std::ffi::OsStr>>(arguments: &[S]) -> String {
    run_binary(&worker_binary(), arguments)
}

/// Runs `binary` in the repository with these arguments, checks that it
/// succeeded (its stderr otherwise) and returns its stdout.
pub fn run_binary<S: AsRef<std::ffi::OsStr>>(binary: &Path, arguments: &[S]) -> String {
    let output = std::process::Command::new(binary)
        .current_dir(repo_root())
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `evidence-lens explain` on the CPU with these arguments (the image
/// first) into `out`, and returns the first map it wrote.
pub fn cli_map(arguments: &[&str], out: &Path) -> Vec<f32> {
    let mut all = vec!["explain"];
    all.extend(arguments);
    all.extend(["--device", "cpu", "--out", out.to_str().unwrap()]);
    let summary: serde_json::Value = serde_json::from_str(&run_command(&all)).unwrap();
    read_npy_values(Path::new(summary["maps"][0]["npy"].as_str().unwrap()))
}

/// A loopback port nothing listens on (for a server this test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the loopback `port`;
/// panics, naming `what`, after `within`.
pub fn wait_until_listening(port: u16, within: std::time::Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `evidence-lens serve` over HTTPS with a fresh test certificate, as a
/// child process: it, its address and the certificate's DER to trust.
pub fn start_https_serve() -> (ChildProcess, SocketAddr, Vec<u8>) {
    let (cert, key, der) = test_certificate();
    let store = temp_folder("tls-store");
    let arguments = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (serve, line) = ChildProcess::start(&arguments, "Evidence Lens on https://");
    let address = listening_address(&line.replace("https://", "http://"));
    (serve, address, der)
}

/// A field of /proc/PID/status ("VmHWM", "VmRSS"), as written there
/// ("123456 kB"); `None` once the process is gone.
pub fn process_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        Some(value.trim().to_string())
    })
}
