//! Gateways and workers (`evidence-lens gateway` / `worker`) as processes,
//! with a private NATS server and a private PostgreSQL for them.

use std::net::SocketAddr;

use crate::nats_server::NatsServer;
use crate::postgres_server::PostgresServer;
use crate::{listening_address, ChildProcess};

pub struct Services {
    pub nats: NatsServer,
    pub database: PostgresServer,
}

impl Services {
    pub fn start() -> Services {
        Services {
            nats: NatsServer::start(),
            database: PostgresServer::start(),
        }
    }

    pub fn gateway(&self) -> (ChildProcess, SocketAddr) {
        self.gateway_with(&[])
    }

    /// A gateway with more options.
    pub fn gateway_with(&self, options: &[&str]) -> (ChildProcess, SocketAddr) {
        let (nats, database) = (self.nats.url(), self.database.url());
        let mut arguments = vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--nats-url",
            &nats,
            "--database-url",
            &database,
        ];
        arguments.extend_from_slice(options);
        let (child, line) = ChildProcess::start(&arguments, "Evidence Lens on http://");
        (child, listening_address(&line))
    }

    /// A worker that takes over a dead worker's job after `takeover` s.
    pub fn worker(&self, name: &str, takeover: u64) -> ChildProcess {
        self.worker_with_env(name, takeover, &[])
    }

    /// A worker with more environment (`OMP_NUM_THREADS`...).
    pub fn worker_with_env(&self, name: &str, takeover: u64, env: &[(&str, &str)]) -> ChildProcess {
        self.worker_with(name, takeover, env, &[])
    }

    /// A worker with more environment and more options.
    pub fn worker_with(
        &self,
        name: &str,
        takeover: u64,
        env: &[(&str, &str)],
        options: &[&str],
    ) -> ChildProcess {
        let (nats, database) = (self.nats.url(), self.database.url());
        let takeover = takeover.to_string();
        let mut arguments = vec![
            "worker",
            "--name",
            name,
            "--takeover-seconds",
            &takeover,
            "--nats-url",
            &nats,
            "--database-url",
            &database,
        ];
        arguments.extend_from_slice(options);
        ChildProcess::start_with_env(&arguments, env, "worker ready").0
    }
}
