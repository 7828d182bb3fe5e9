//! A private NATS server with JetStream for one test, on a free loopback
//! port with its storage in a temporary folder, killed when dropped. It is
//! Debian's `nats-server` (`./dev test` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, temp_folder, wait_until_listening};

pub struct NatsServer {
    process: Option<Child>,
    port: u16,
    storage: PathBuf,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let mut server = NatsServer {
            process: None,
            port: free_port(),
            storage: temp_folder("nats"),
        };
        server.start_again();
        server
    }

    /// Starts it (again, after `stop`: same port, same storage).
    pub fn start_again(&mut self) {
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let process = Command::new(program)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed (./dev test installs Debian's nats-server)");
        self.process = Some(process);
        wait_until_listening(self.port, Duration::from_secs(10), "nats-server");
    }

    /// Kills it, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
