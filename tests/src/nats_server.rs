//! A private NATS server with JetStream for one test, on a free loopback
//! port with its storage in a temporary folder, killed when dropped. It is
//! Debian's `nats-server` (`./dev test` installs it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, temp_folder, wait_until_listening};

pub struct NatsServer {
    process: Child,
    port: u16,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let port = free_port();
        let storage = temp_folder("nats");
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let process = Command::new(program)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is not installed (./dev test installs Debian's nats-server)");
        wait_until_listening(port, Duration::from_secs(10), "nats-server");
        NatsServer { process, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
